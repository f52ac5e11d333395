import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BACKENDS, Server, signedIn, until } from "./server.js";

for (const backend of BACKENDS) {
  describe(`presence (${backend})`, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    test("enter, update, leave: peers kept current, me is this socket", async () => {
      const a = await signedIn(server);
      const b = await signedIn(server);
      const roomA = a.presence("doc-1");
      const roomB = b.presence("doc-1");
      const peersA = await roomA.enter({ name: "A" });
      assert.equal(typeof roomA.me, "string");
      assert.deepEqual(peersA.map((p) => p.id), [roomA.me]);
      await roomB.enter({ name: "B" });
      await until(() => roomA.peers.length === 2, 20_000, "B seen by A");
      assert.deepEqual(
        roomA.peers.map((p) => p.data.name).sort(),
        ["A", "B"],
      );
      assert.equal(roomB.peers.find((p) => p.id === roomB.me).userId, b.auth.user.id);
      const changes = [];
      roomA.onChange((peers) => changes.push(peers));
      await roomB.update({ name: "B2", cursor: { x: 1 } });
      await until(() => roomA.peers.some((p) => p.data.name === "B2"), 20_000, "update seen");
      const listed = await a.presence("doc-1").list();
      assert.deepEqual(listed.map((p) => p.id).sort(), [roomA.me, roomB.me].sort());
      await roomB.leave();
      await until(() => roomA.peers.length === 1, 20_000, "leave seen");
      assert.equal(roomA.peers[0].id, roomA.me);
      assert.ok(changes.length >= 2);
      // A reconnect re-enters with the last state under a new connection id.
      const before = roomA.me;
      a.reconnect();
      await until(() => roomA.me && roomA.me !== before && roomA.peers.length === 1, 20_000, "re-entered");
      assert.equal(roomA.peers[0].data.name, "A");
      const refused = await a.presence("no spaces allowed").enter({}).catch((e) => e);
      assert.equal(refused.code, "INVALID_ARGUMENT");
      a.close();
      b.close();
    });
  });
}
