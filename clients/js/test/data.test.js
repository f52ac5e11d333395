import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ActorbaseError } from "../src/index.js";
import { BACKENDS, Server, signedIn } from "./server.js";

for (const backend of BACKENDS) {
  describe(`REST (${backend})`, () => {
    const server = new Server(backend, { APP: "examples/todos.py", MAX_UPLOAD_BYTES: "2000000" });
    before(() => server.start());
    after(() => server.destroy());

    test("data CRUD, lists with where/order/cursor, errors as ActorbaseError", async () => {
      const ab = await signedIn(server);
      const todos = ab.data("todos");
      const a = await todos.create({ id: "a", title: "A", priority: 2, done: false });
      assert.equal(a.id, "a");
      await todos.create({ id: "b", title: "B", priority: 1, done: false });
      await todos.create({ id: "c", title: "C", priority: 3, done: true });
      assert.equal((await todos.get("b")).title, "B");
      const updated = await todos.update("b", { done: true, priority: null });
      assert.equal(updated.done, true);
      assert.equal("priority" in (await todos.get("b")), false);
      const page = await todos.list({ where: { done: true }, order: { title: "desc" }, limit: 1 });
      assert.deepEqual(page.data.map((r) => r.id), ["c"]);
      assert.equal(page.total, 2);
      assert.equal(page.hasMore, true);
      const next = await todos.list({ where: { done: true }, order: { title: "desc" }, limit: 1, cursor: page.cursor });
      assert.deepEqual(next.data.map((r) => r.id), ["b"]);
      assert.equal(next.hasMore, false);
      await todos.remove("a");
      const missing = await todos.get("a").catch((e) => e);
      assert.ok(missing instanceof ActorbaseError);
      assert.deepEqual([missing.code, missing.status], ["NOT_FOUND", 404]);
      const dup = await todos.create({ id: "b", title: "again" }).catch((e) => e);
      assert.deepEqual([dup.code, dup.status], ["CONFLICT", 409]);
      const invalid = await todos.create({ done: "yes" }).catch((e) => e);
      assert.deepEqual([invalid.code, invalid.status], ["INVALID_ARGUMENT", 400]);
      assert.ok(invalid.details.some((d) => d.field === "title"));
      ab.close();
    });

    test("query, mutate with an idempotency key, functions", async () => {
      const ab = await signedIn(server);
      const r = await ab.mutate(
        [
          { entity: "lists", id: "L", op: "set", data: { name: "L" } },
          { entity: "todos", id: "t1", op: "set", data: { title: "one", listId: "L" } },
        ],
        { id: "key-1" },
      );
      assert.equal(typeof r.tx, "number");
      const again = await ab.mutate(
        [
          { entity: "lists", id: "L", op: "set", data: { name: "L" } },
          { entity: "todos", id: "t1", op: "set", data: { title: "one", listId: "L" } },
        ],
        { id: "key-1" },
      );
      assert.equal(again.tx, r.tx); // replayed, not applied twice
      const q = await ab.query({ lists: { todos: {} } });
      assert.deepEqual(q.lists.map((l) => l.todos.map((t) => t.id)), [["t1"]]);
      const fn = await ab.functions.call("createTodo", { title: "milk", listId: "L" });
      assert.equal(typeof fn.result, "string");
      assert.equal((await ab.data("todos").get(fn.result)).title, "milk");
      const bad = await ab.functions.call("createTodo", { title: "", listId: "L" }).catch((e) => e);
      assert.deepEqual([bad.code, bad.status], ["INVALID_ARGUMENT", 400]);
      assert.ok(Array.isArray(bad.details));
      const none = await ab.functions.call("nope", {}).catch((e) => e);
      assert.equal(none.code, "NOT_FOUND");
      const refused = await ab.mutate([{ entity: "todos", id: "zz", op: "merge", data: { x: 1 } }]).catch((e) => e);
      assert.equal(refused.code, "NOT_FOUND");
      assert.equal(ab.outbox.pending, 0);
      ab.close();
    });

    test("storage: upload with progress, signed URL, list, remove", async () => {
      const ab = await signedIn(server);
      const bytes = new TextEncoder().encode("hello actorbase\n".repeat(40_000)); // 640 KB
      const progress = [];
      const up = await ab.storage.upload("docs/hello.txt", bytes, {
        contentType: "text/plain",
        onProgress: (p) => progress.push(p),
      });
      assert.equal(up.size, bytes.length);
      assert.equal(up.contentType, "text/plain");
      assert.ok(progress.length > 3, `progress ${progress.length}`);
      assert.equal(progress[0].loaded, 0);
      assert.equal(progress.at(-1).loaded, bytes.length);
      assert.ok(progress.every((p, i) => i === 0 || p.loaded >= progress[i - 1].loaded));
      const { url } = await ab.storage.signedUrl("docs/hello.txt");
      const body = await (await fetch(url)).text();
      assert.equal(body.length, bytes.length);
      const listed = await ab.storage.list({ prefix: "docs/" });
      assert.deepEqual(listed.files.map((f) => f.path), ["docs/hello.txt"]);
      await ab.storage.remove("docs/hello.txt");
      const gone = await ab.storage.signedUrl("docs/hello.txt").catch((e) => e);
      assert.equal(gone.status, 404);
      const tooBig = await ab.storage
        .upload("big.txt", new Uint8Array(2_100_000).fill(65), { contentType: "text/plain" })
        .catch((e) => e);
      assert.equal(tooBig.status, 413);
      ab.close();
    });
  });
}
