import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { memoryTokens } from "../src/index.js";
import { ADMIN_TOKEN, BACKENDS, Server, client, gatedWebSocket, signedIn, until } from "./server.js";

const ids = (rows) => rows.map((r) => r.id);

// Each suite has its own server: they run side by side.
describe("live queries", { concurrency: true }, () => {
for (const backend of BACKENDS) {
  for (const transport of ["ws", "sse"]) {
    describe(`live queries over ${transport} (${backend})`, { concurrency: 1 }, () => {
      const server = new Server(backend);
      before(() => server.start());
      after(() => server.destroy());

      test("q-init then diffs kept in a multi-key $order, as the server orders them", async () => {
        const writer = await signedIn(server);
        const reader = await signedIn(server, { transport });
        // The same user reads what it writes (rows are their creator's).
        await reader.auth.signIn({ email: writer.email, password: "correct horse battery" });
        const rows = [
          { id: "a", p: 2, t: "x" },
          { id: "b", p: null, t: "y" },
          { id: "c", t: "z" },
          { id: "d", p: true, t: "w" },
          { id: "e", p: "2", t: "v" },
          { id: "f", p: 2, t: "😀" },
          { id: "g", p: 2, t: "\uffff" },
        ];
        await writer.mutate(rows.map(({ id, ...data }) => ({ entity: "things", id, op: "set", data })));
        const order = { p: "desc", t: "asc" };
        const live = reader.live({ things: { $order: order } });
        const seen = [];
        live.subscribe((r) => seen.push(ids(r.things)));
        await until(() => live.result, 20_000, "q-init");
        const server1 = await writer.query({ things: { $order: order } });
        assert.deepEqual(ids(live.result.things), ids(server1.things));
        await writer.mutate([
          { entity: "things", id: "h", op: "set", data: { p: 1, t: "a" } },
          { entity: "things", id: "a", op: "merge", data: { p: 0 } },
          { entity: "things", id: "e", op: "delete" },
          { entity: "things", id: "b", op: "merge", data: { t: "q" } },
        ]);
        const expected = await writer.query({ things: { $order: order } });
        await until(() => live.tx >= expected.tx, 20_000, "diff");
        assert.deepEqual(live.result.things, expected.things);
        assert.equal(live.inits, 1);
        assert.ok(seen.length >= 2);
        live.close();
        writer.close();
        reader.close();
      });

      test("links: nested rows arrive and change with diffs; async iterator", async () => {
        const ab = await signedIn(server, { transport });
        await ab.mutate([
          { entity: "lists", id: "L1", op: "set", data: { name: "one" } },
          { entity: "todos", id: "t1", op: "set", data: { title: "a", listId: "L1" } },
        ]);
        const live = ab.live({ lists: { todos: { $order: { title: "asc" } } } });
        const it = live[Symbol.asyncIterator]();
        const first = (await it.next()).value;
        assert.deepEqual(first.lists.map((l) => ids(l.todos)), [["t1"]]);
        await ab.mutate([{ entity: "todos", id: "t0", op: "set", data: { title: "0", listId: "L1" } }]);
        let value;
        do {
          value = (await it.next()).value;
        } while (value.lists[0].todos.length < 2 || live.tx === null);
        await until(async () => {
          const q = await ab.query({ lists: { todos: { $order: { title: "asc" } } } });
          return JSON.stringify(q.lists) === JSON.stringify(live.result.lists);
        }, 20_000, "linked rows to match the server");
        assert.deepEqual(ids(live.result.lists[0].todos), ["t0", "t1"]);
        await it.return();
        live.close();
        ab.close();
      });

      test("several entities in one live query", async () => {
        const ab = await signedIn(server, { transport });
        const live = ab.live({ alpha: {}, beta: { $where: { on: true } } });
        await until(() => live.result, 20_000, "q-init");
        await ab.mutate([
          { entity: "alpha", id: "x", op: "set", data: {} },
          { entity: "beta", id: "y", op: "set", data: { on: true } },
          { entity: "beta", id: "z", op: "set", data: { on: false } },
        ]);
        await until(() => live.result.alpha.length === 1 && live.result.beta.length === 1, 20_000, "diffs");
        assert.deepEqual(ids(live.result.beta), ["y"]);
        live.close();
        ab.close();
      });
    });
  }

  describe(`resume after a server restart (${backend})`, { concurrency: 1 }, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    test("one q-diff, not a q-init, and no row lost or repeated", async () => {
      const writer = await signedIn(server);
      const gate = gatedWebSocket();
      const reader = await signedIn(server, { WebSocket: gate.WebSocket });
      await reader.auth.signIn({ email: writer.email, password: "correct horse battery" });
      const seed = Array.from({ length: 20 }, (_, i) => ({
        entity: "items",
        id: `i${String(i).padStart(2, "0")}`,
        op: "set",
        data: { n: i },
      }));
      await writer.mutate(seed);
      const live = reader.live({ items: { $order: { n: "asc" } } });
      const states = [];
      reader.connection.onChange((s) => states.push(s));
      await until(() => live.result?.items.length === 20, 20_000, "q-init");
      assert.equal(live.inits, 1);
      const diffsBefore = live.diffs;

      await server.stop();
      await until(() => reader.connection.state === "offline", 20_000, "offline");
      gate.open = false; // the reader stays away while the server changes
      await server.start();
      await writer.mutate([
        { entity: "items", id: "i00", op: "delete" },
        { entity: "items", id: "i05", op: "merge", data: { n: 100 } },
        { entity: "items", id: "new", op: "set", data: { n: -1 } },
      ]);
      await writer.mutate([{ entity: "items", id: "i07", op: "merge", data: { label: "x" } }]);
      const expected = await writer.query({ items: { $order: { n: "asc" } } });
      gate.open = true;
      await until(() => live.tx >= expected.tx, 20_000, "resume");
      assert.equal(reader.connection.state, "open");
      assert.equal(live.inits, 1, "resumed without a q-init");
      assert.equal(live.diffs - diffsBefore, 1, "one q-diff for the whole gap");
      assert.deepEqual(live.result.items, expected.items);
      assert.equal(new Set(ids(live.result.items)).size, live.result.items.length);
      assert.ok(states.includes("offline") && states.at(-1) === "open");
      live.close();
      writer.close();
      reader.close();
    });
  });
}

describe("a resume position the server does not have (sqlite)", () => {
  const server = new Server("sqlite");
  before(() => server.start());
  after(() => server.destroy());

  test("a database started afresh: the live query falls back to a q-init", async () => {
    // The admin token outlives the database (it comes from the environment).
    const tokenStorage = memoryTokens();
    tokenStorage.set({ accessToken: ADMIN_TOKEN, refreshToken: "-", user: { id: "admin" }, expiresAt: null });
    for (const transport of ["ws", "sse"]) {
      const ab = client(server, { tokenStorage, transport });
      for (const id of ["o", "p"]) {
        await server.admin("POST", "/api/mutate", { ops: [{ entity: "old", id, op: "set", data: {} }] });
      }
      const live = ab.live({ old: {} });
      await until(() => live.result?.old.length >= 2 && live.tx > 1, 20_000, "q-init");
      await server.stop();
      rmSync(join(server.dataDir, "actorbase.db"), { force: true });
      for (const f of ["actorbase.db-wal", "actorbase.db-shm"]) rmSync(join(server.dataDir, f), { force: true });
      await server.start();
      await until(() => live.inits === 2, 20_000, "a fresh q-init");
      assert.deepEqual(live.result.old, []);
      assert.equal(live.error, null);
      ab.close();
    }
  });
});

describe("another user signs in on a live client (sqlite)", () => {
  const server = new Server("sqlite");
  before(() => server.start());
  after(() => server.destroy());

  test("the socket is remade for them and the live query starts afresh", async () => {
    const b = await signedIn(server);
    await b.mutate([{ entity: "mine", id: "of-b", op: "set", data: {} }]);
    const gate = gatedWebSocket();
    const ab = await signedIn(server, { WebSocket: gate.WebSocket });
    await ab.mutate([{ entity: "mine", id: "of-a", op: "set", data: {} }]);
    const live = ab.live({ mine: {} });
    await until(() => live.result?.mine.length === 1, 20_000, "A's rows");
    assert.deepEqual(ids(live.result.mine), ["of-a"]);
    await ab.auth.signIn({ email: b.email, password: "correct horse battery" });
    await until(() => live.result.mine[0]?.id === "of-b", 20_000, "B's rows");
    assert.deepEqual(ids(live.result.mine), ["of-b"]);
    assert.equal(live.inits, 2);
    assert.equal(gate.made, 2);
    ab.close();
    b.close();
  });
});
});
