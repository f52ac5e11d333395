import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BACKENDS, Server, gatedWebSocket, signedIn, sleep, until } from "./server.js";

// The shortest token life the server allows: the test outlives the first token.
const TTL = 30;

// The backends wait out their tokens side by side.
describe("token expiry", { concurrency: true }, () => {
for (const backend of BACKENDS) {
  describe(`token expiry (${backend})`, () => {
    const server = new Server(backend, { ACCESS_TOKEN_TTL: String(TTL), SESSION_CHECK_INTERVAL: "1" });
    before(() => server.start());
    after(() => server.destroy());

    test("the live socket is re-authed in place and SSE resumes; no q-init again", async () => {
      const gate = gatedWebSocket();
      const ab = await signedIn(server, { WebSocket: gate.WebSocket });
      const sse = await signedIn(server, { transport: "sse" });
      await sse.auth.signIn({ email: ab.email, password: "correct horse battery" });
      const live = ab.live({ ticks: {} });
      const feed = sse.live({ ticks: {} });
      await until(() => live.result && feed.result, 20_000, "q-init");
      const firstToken = await ab.auth.accessToken();
      await sleep((TTL + 3) * 1000);
      assert.notEqual(await ab.auth.accessToken(), firstToken, "renewed before expiry");
      const { tx } = await ab.mutate([{ entity: "ticks", id: "t1", op: "set", data: {} }]);
      await until(() => live.tx >= tx && feed.tx >= tx, 15_000, "diffs after expiry");
      assert.deepEqual(live.result.ticks.map((r) => r.id), ["t1"]);
      assert.deepEqual(feed.result.ticks.map((r) => r.id), ["t1"]);
      assert.equal(gate.made, 1, "one socket throughout");
      assert.equal(live.inits, 1);
      assert.equal(feed.inits, 1, "the SSE stream resumed with a q-diff");
      ab.close();
      sse.close();
    });
  });
}
});
