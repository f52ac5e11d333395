import { Backoff, timer } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { ActorbaseError } from "./errors.js";
import { tokenSubject } from "./tokens.js";

/** No message (not even a ping) for this long: the connection is dead. */
const SILENCE_MS = 75_000;

/** The one WebSocket every live query, presence room and mutation shares. It opens on
 * first use, authenticates, and when it drops reconnects with backoff and jitter (at
 * once when the browser says it is back online); each new access token is sent as a
 * fresh `auth` on the open socket, so subscriptions stay as they are.
 *
 * Users register with `handlers` (a message `type` → fn) and `onOpen` (called after
 * every auth-ok: resubscribe, re-enter rooms, flush the outbox). */
export class LiveSocket {
  #WebSocket;
  #url;
  #auth;
  #ws = null;
  #wanted = false;
  #silence = null;
  #userId = null;
  #connecting = false;
  #authed = false;
  #backoff = new Backoff();
  #retry = null;
  #state;
  #stateChanges = new Emitter();
  #opens = new Emitter();
  #closes = new Emitter();
  #handlers = new Map();
  #offToken;
  #offUser;
  #onOnline = () => this.reconnectNow();

  constructor(baseUrl, WebSocketImpl, auth, state) {
    this.#WebSocket = WebSocketImpl;
    this.#url = baseUrl.replace(/^http/, "ws").replace(/\/+$/, "") + "/ws";
    this.#auth = auth;
    this.#state = state;
    this.connectionId = null;
    this.#offToken = auth.onToken((token) => {
      if (!this.#authed) return;
      // A socket stays with its user: another user's token means a new socket.
      if (tokenSubject(token) !== this.#userId) this.#drop();
      else this.#send({ type: "auth", token });
    });
    this.#offUser = auth.onChange((user) => {
      if (user && this.#wanted && !this.#ws) this.reconnectNow();
      if (!user && this.#ws) this.#drop(); // signed out: nothing may stay subscribed
    });
    globalThis.addEventListener?.("online", this.#onOnline);
  }

  get isOpen() {
    return this.#authed;
  }

  on(type, fn) {
    this.#handlers.set(type, fn);
  }

  onOpen(fn) {
    return this.#opens.on(fn);
  }

  onClose(fn) {
    return this.#closes.on(fn);
  }

  /** Open the socket if it is not open or opening (first use of a live feature). */
  start() {
    this.#wanted = true;
    if (!this.#ws && !this.#retry && !this.#connecting) this.#connect();
  }

  /** Send a message if the socket is authenticated; false if not (the caller waits for
   * the next onOpen, where it sends again). */
  send(message) {
    return this.#authed && this.#send(message);
  }

  /** Reconnect now, skipping the rest of a backoff wait (browser `online`). */
  reconnectNow() {
    if (!this.#wanted || this.#authed) return;
    clearTimeout(this.#retry);
    this.#retry = null;
    this.#backoff.reset();
    if (this.#ws) {
      if (this.#ws.readyState === 1 /* OPEN, waiting for auth-ok */) return;
      this.#drop();
    }
    this.#connect();
  }

  /** Close the current socket as if the network dropped (tests; a stuck socket). */
  drop() {
    this.#drop();
  }

  close() {
    this.#wanted = false;
    clearTimeout(this.#retry);
    this.#retry = null;
    this.#offToken();
    this.#offUser();
    globalThis.removeEventListener?.("online", this.#onOnline);
    const ws = this.#ws;
    this.#detach();
    ws?.close(1000);
    this.#state.set("closed");
  }

  async #connect() {
    this.#retry = null;
    if (this.#connecting) return;
    this.#connecting = true;
    let token;
    try {
      token = await this.#auth.accessToken();
    } finally {
      this.#connecting = false;
    }
    if (!this.#wanted || this.#ws) return;
    if (!token) {
      this.#state.set("closed"); // until someone signs in (auth onChange reconnects)
      return;
    }
    this.#state.set("connecting");
    let ws;
    try {
      ws = new this.#WebSocket(this.#url);
    } catch {
      this.#scheduleRetry();
      return;
    }
    this.#ws = ws;
    ws.onopen = async () => {
      if (this.#ws !== ws) return;
      this.#watch();
      const fresh = (await this.#auth.accessToken()) ?? token;
      if (this.#ws === ws) this.#send({ type: "auth", token: fresh });
    };
    ws.onmessage = (event) => {
      if (this.#ws !== ws) return;
      this.#watch();
      this.#receive(event.data);
    };
    ws.onclose = () => {
      if (this.#ws === ws) this.#lost();
    };
    ws.onerror = () => {}; // a close follows
  }

  #receive(data) {
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return;
    }
    switch (message.type) {
      case "ping":
        this.#send({ type: "pong" });
        return;
      case "auth-ok":
        if (!this.#authed) {
          this.#authed = true;
          this.connectionId = message.connectionId ?? null;
          this.#userId = message.userId ?? null;
          this.#backoff.reset();
          this.#state.set("open");
          this.#opens.emit(this.connectionId);
        }
        return;
      case "auth-error":
        // An expired or revoked token: the close follows. Refresh now, so the next
        // connect has a good token, or the session is found gone (signed out).
        this.#auth.refresh().catch(() => {});
        return;
      default: {
        const handler = this.#handlers.get(message.type);
        if (handler) handler(message);
      }
    }
  }

  #send(message) {
    try {
      this.#ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  #drop() {
    const ws = this.#ws;
    if (!ws) return;
    this.#lost();
    try {
      ws.close(4000, "client reconnects");
    } catch {
      // already closing
    }
  }

  /** The server pings every WS_PING_INTERVAL (30 s): a socket silent for much longer
   * is a dead connection the OS has not noticed (a laptop's sleep, a NAT dropping it). */
  #watch() {
    clearTimeout(this.#silence);
    this.#silence = timer(() => this.#drop(), SILENCE_MS);
  }

  #detach() {
    clearTimeout(this.#silence);
    if (this.#ws) {
      this.#ws.onopen = this.#ws.onmessage = this.#ws.onclose = null;
    }
    this.#ws = null;
    const was = this.#authed;
    this.#authed = false;
    this.connectionId = null;
    return was;
  }

  #lost() {
    this.#detach();
    this.#closes.emit(ActorbaseError.network("The live connection closed"));
    if (!this.#wanted) return;
    this.#state.set("offline");
    this.#scheduleRetry();
  }

  #scheduleRetry() {
    if (!this.#wanted || this.#retry) return;
    this.#state.set("offline");
    this.#retry = timer(() => this.#connect(), this.#backoff.next());
  }
}
