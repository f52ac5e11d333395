import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ActorbaseError } from "../src/index.js";
import { ADMIN_TOKEN, BACKENDS, Server, client } from "./server.js";

/** A token store that records every use (a static token must touch none). */
function spyStorage() {
  const calls = [];
  return {
    calls,
    get: () => (calls.push("get"), null),
    set: () => calls.push("set"),
    clear: () => calls.push("clear"),
  };
}

/** fetch that records each request's path and Authorization header. */
function spyFetch() {
  const seen = [];
  const fn = (url, init = {}) => {
    seen.push({ path: new URL(url).pathname, auth: init.headers?.Authorization });
    return fetch(url, init);
  };
  return { seen, fn };
}

for (const backend of BACKENDS) {
  describe(`static token (${backend})`, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    test("the admin token is the bearer on REST and the WebSocket, never stored", async () => {
      const storage = spyStorage();
      const spy = spyFetch();
      const ab = client(server, { token: ADMIN_TOKEN, tokenStorage: storage, fetch: spy.fn });
      const stats = await ab.request("GET", "/api/admin/stats");
      assert.equal(typeof stats, "object");
      await ab.data("notes").create({ id: "b", n: 2 });
      const live = ab.live({ notes: { $order: { n: "asc" } } });
      const first = await nextResult(live);
      assert.deepEqual(first.notes.map((r) => r.id), ["b"]);
      await server.admin("POST", "/api/data/notes", { id: "a", n: 1 });
      let result = await nextResult(live);
      while (result.notes.length < 2) result = await nextResult(live);
      assert.deepEqual(result.notes.map((r) => r.id), ["a", "b"]); // kept in $order
      assert.equal(ab.connection.state, "open");
      assert.ok(spy.seen.length >= 2);
      assert.ok(spy.seen.every((r) => r.auth === `Bearer ${ADMIN_TOKEN}`));
      assert.deepEqual(storage.calls, []);
      assert.equal(ab.auth.user, null);
      ab.close();
    });

    test("a wrong static token fails with 401 and is never refreshed", async () => {
      const storage = spyStorage();
      const spy = spyFetch();
      const ab = client(server, { token: "not-the-admin-token", tokenStorage: storage, fetch: spy.fn });
      const error = await ab.request("GET", "/api/admin/stats").catch((e) => e);
      assert.ok(error instanceof ActorbaseError);
      assert.equal(error.status, 401);
      const refused = await ab.auth.refresh().catch((e) => e);
      assert.equal(refused.code, "UNAUTHENTICATED");
      assert.deepEqual(spy.seen.map((r) => r.path), ["/api/admin/stats"]);
      assert.equal(await ab.auth.accessToken(), "not-the-admin-token"); // kept as given
      assert.deepEqual(storage.calls, []);
      ab.close();
    });

    test("request() sends a JSON body and returns the reply; errors keep the wire shape", async () => {
      const ab = client(server, { token: ADMIN_TOKEN });
      const created = await ab.request("POST", "/api/data/notes", { id: "r1", n: 5 });
      assert.equal(created.data.id, "r1");
      const missing = await ab.request("GET", "/api/data/notes/nope").catch((e) => e);
      assert.deepEqual([missing.code, missing.status], ["NOT_FOUND", 404]);
      assert.equal(await ab.request("DELETE", "/api/data/notes/r1"), null);
      ab.close();
    });
  });
}

function nextResult(live) {
  return new Promise((resolve, reject) => {
    let first = true;
    let stop = () => {};
    const seen = live.result;
    stop = live.subscribe(
      (result) => {
        if (first && result === seen) return; // the one already held
        first = false;
        queueMicrotask(() => stop());
        resolve(result);
      },
      reject,
    );
    first = false;
  });
}
