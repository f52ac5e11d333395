// The admin token for this tab only: sessionStorage, never a URL, cookie or localStorage.
// Everything the dashboard asks of the server goes through the JavaScript client
// (@actorbase/client, served at /admin/client/) in its static-token mode: the token is
// the bearer on REST and in the WebSocket's `auth` message, never refreshed nor stored.
import { createClient, memoryOutbox } from "./client/index.js";

const KEY = "actorbase.admin";
let current = null;

export const session = {
  get: () => sessionStorage.getItem(KEY),
  set: (token) => {
    session.clear();
    sessionStorage.setItem(KEY, token);
  },
  clear: () => {
    current?.close();
    current = null;
    sessionStorage.removeItem(KEY);
  },
};

/** The client for the signed-in token; writes queue in memory only (no IndexedDB). */
export function client() {
  if (!current) {
    current = createClient({ url: location.origin, token: session.get(), outbox: memoryOutbox() });
  }
  return current;
}
