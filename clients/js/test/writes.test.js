import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileOutbox } from "../src/index.js";
import { BACKENDS, Server, client, signedIn, until } from "./server.js";

const ids = (rows) => rows.map((r) => r.id);

// Each suite has its own server: they run side by side.
describe("writes", { concurrency: true }, () => {
for (const backend of BACKENDS) {
  describe(`optimistic writes and the outbox (${backend})`, { concurrency: 1 }, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    test("optimistic rows show before the answer; a refused mutation is rolled back", async () => {
      const ab = await signedIn(server);
      const live = ab.live({ notes: { $where: { open: true }, $order: { rank: "asc" } } });
      await until(() => live.result && ab.connection.state === "open", 20_000, "q-init");
      const shown = [];
      live.subscribe((r) => shown.push(ids(r.notes)));
      const write = ab.mutate([
        { entity: "notes", id: "n2", op: "set", data: { open: true, rank: 2 } },
        { entity: "notes", id: "n1", op: "set", data: { open: true, rank: 1 } },
        { entity: "notes", id: "n3", op: "set", data: { open: false, rank: 0 } },
      ]);
      let answered = false;
      write.then(() => (answered = true));
      // Microtasks only: no I/O turn, so no answer can have arrived yet.
      for (let i = 0; i < 10; i++) await Promise.resolve();
      assert.equal(answered, false);
      assert.equal(live.result.notes.length, 2, "shown before the server answered");
      assert.deepEqual(ids(live.result.notes), ["n1", "n2"]);
      const { tx } = await write;
      await until(() => live.tx >= tx, 20_000, "the diff");
      assert.deepEqual(ids(live.result.notes), ["n1", "n2"]);
      assert.equal(live.result.notes[0].userId, ab.auth.user.id);

      // A batch with one bad op is refused whole: its optimistic rows go again.
      const refused = ab.mutate([
        { entity: "notes", id: "n0", op: "set", data: { open: true, rank: 0 } },
        { entity: "notes", id: "missing", op: "merge", data: { rank: 5 } },
      ]).catch((e) => e);
      for (let i = 0; i < 10; i++) await Promise.resolve();
      assert.deepEqual(ids(live.result.notes), ["n0", "n1", "n2"]);
      const error = await refused;
      assert.equal(error.code, "NOT_FOUND");
      assert.deepEqual(ids(live.result.notes), ["n1", "n2"]);
      assert.ok(shown.some((s) => s.join() === "n0,n1,n2"));
      assert.equal(ab.outbox.pending, 0);
      live.close();
      ab.close();
    });

    test("a lost acknowledgement is retried with the same key and lands once", async () => {
      const ab = await signedIn(server);
      const live = ab.live({ marks: {} });
      await until(() => ab.connection.state === "open" && live.result, 20_000, "open");
      const write = ab.mutate([{ entity: "marks", id: "m1", op: "set", data: { v: 1 } }], { id: "lost-ack-1" });
      ab.reconnect(); // the socket drops with the mutate sent and its answer unread
      const { tx, replayed } = await write;
      assert.equal(typeof tx, "number");
      const rows = await ab.query({ marks: {} });
      assert.deepEqual(ids(rows.marks), ["m1"]);
      // Whether the first send got through or not, one commit holds the key.
      const again = await ab.mutate([{ entity: "marks", id: "m1", op: "set", data: { v: 1 } }], { id: "lost-ack-1" });
      assert.equal(again.tx, tx);
      assert.equal(again.replayed, true);
      assert.ok(replayed === undefined || replayed === true);
      live.close();
      ab.close();
    });

    test("writes made while the server is down are kept in a file and land once, in order", async () => {
      const dir = mkdtempSync(join(tmpdir(), "abjs-outbox-"));
      const path = join(dir, "outbox.json");
      const first = await signedIn(server, { outbox: fileOutbox(path) });
      const live = first.live({ steps: { $order: { n: "asc" } } });
      await until(() => first.connection.state === "open" && live.result, 20_000, "open");
      await server.stop();
      await until(() => first.connection.state === "offline", 20_000, "offline");
      const writes = [];
      for (let n = 0; n < 5; n++) {
        writes.push(first.mutate([{ entity: "steps", id: `s${n}`, op: "set", data: { n } }]).catch((e) => e));
      }
      // Each step merges into the one before: order matters.
      writes.push(first.mutate([{ entity: "steps", id: "s4", op: "merge", data: { after: "s3" } }]).catch((e) => e));
      await until(() => first.outbox.pending === 6, 5000, "queued");
      await until(() => live.result.steps.length === 5, 5000, "optimistic while offline");
      assert.equal(live.result.steps[4].after, "s3");
      // The app is closed offline; a new one with the same outbox file sends the writes.
      const session = { email: first.email };
      first.close();
      await server.start();
      const second = client(server, { outbox: fileOutbox(path) });
      await second.auth.signIn({ email: session.email, password: "correct horse battery" });
      await second.outbox.flush(); // after the file is read: its writes are sent
      await until(() => second.outbox.pending === 0, 20_000, "outbox flushed");
      const rows = await second.query({ steps: { $order: { n: "asc" } } });
      assert.deepEqual(ids(rows.steps), ["s0", "s1", "s2", "s3", "s4"]);
      assert.equal(rows.steps[4].after, "s3");
      // Exactly once: one commit per write. On PostgreSQL the server runs a process per
      // core, each counting its own commits (the REST write before the socket opened may
      // land on one, the rest on another): sum every process's count, each as sent with a
      // heartbeat after the last write was answered.
      const answered = Date.now();
      let nodes;
      await until(async () => {
        ({ nodes } = await server.admin("GET", "/api/admin/stats"));
        // A process's first row (it registers as it starts) has no figures yet.
        return nodes.every((n) => n.heartbeatAt === undefined || (n.mutations && n.heartbeatAt > answered));
      }, 20_000, "every process's figures after the writes");
      assert.equal(nodes.reduce((sum, n) => sum + n.mutations.total, 0), 6);
      second.close();
    });

    test("writes made offline by a running client are sent when the server is back", async () => {
      const ab = await signedIn(server);
      const live = ab.live({ offline: {} });
      await until(() => ab.connection.state === "open" && live.result, 20_000, "open");
      await server.stop();
      const counts = [];
      ab.outbox.onChange((n) => counts.push(n));
      const writes = [1, 2, 3].map((n) =>
        ab.mutate([{ entity: "offline", id: `o${n}`, op: "set", data: { n } }]),
      );
      await until(() => ab.outbox.pending === 3, 5000, "queued");
      await server.start();
      const results = await Promise.all(writes);
      assert.deepEqual(counts, [1, 2, 3, 2, 1, 0]);
      assert.ok(results[0].tx < results[1].tx && results[1].tx < results[2].tx);
      await until(() => live.tx >= results[2].tx, 20_000, "diffs after reconnect");
      assert.deepEqual(ids(live.result.offline), ["o1", "o2", "o3"]);
      const rows = await ab.query({ offline: {} });
      assert.deepEqual(live.result.offline, rows.offline);
      live.close();
      ab.close();
    });
    test("queued writes are sent only as the user who made them", async () => {
      const b = await signedIn(server);
      const bEmail = b.email;
      b.close();
      const ab = await signedIn(server);
      const aId = ab.auth.user.id;
      await server.stop();
      const aWrite = ab.mutate([{ entity: "owned", id: "by-a", op: "set", data: {} }]);
      await until(() => ab.outbox.pending === 1, 5000, "queued");
      await ab.auth.signOut(); // offline: signed out here, the server is not told
      await server.start();
      await ab.auth.signIn({ email: bEmail, password: "correct horse battery" });
      await ab.mutate([{ entity: "owned", id: "by-b", op: "set", data: {} }]);
      assert.equal(ab.outbox.pending, 1, "A's write waits for A");
      const asB = await ab.query({ owned: {} });
      assert.deepEqual(ids(asB.owned), ["by-b"]);
      await ab.auth.signIn({ email: ab.email, password: "correct horse battery" });
      const { tx } = await aWrite;
      assert.equal(typeof tx, "number");
      const row = await ab.data("owned").get("by-a");
      assert.equal(row.userId, aId);
      assert.equal(ab.outbox.pending, 0);
      ab.close();
    });
  });
}
});
