// Compiled by `tsc -p test/types` (npm test): the README's usage type-checks.
import { ActorbaseError, applyDiff, createClient, fileOutbox, localStorageTokens } from "../../src/index.js";
import type { LiveQuery, MutationResult, Row } from "../../src/index.js";

type Todo = Row & { title: string; done: boolean };

async function usage(): Promise<void> {
  const ab = createClient({ url: "http://127.0.0.1:7700", tokenStorage: localStorageTokens("k"), outbox: fileOutbox("/tmp/o.json") });
  const signed = await ab.auth.signIn({ email: "a@example.com", password: "pw" });
  if ("mfaRequired" in signed) await ab.auth.verifyMfa({ challenge: signed.challenge, code: "123456" });
  const off = ab.auth.onChange((user) => user?.email);
  off();
  const todo: Todo = await ab.data<Todo>("todos").create({ title: "x", done: false });
  const page = await ab.data<Todo>("todos").list({ where: { done: false }, order: { createdAt: "asc" }, limit: 10 });
  const titles: string[] = page.data.map((t) => t.title);
  const r: MutationResult = await ab.mutate([{ entity: "todos", id: todo.id, op: "merge", data: { done: true } }], { id: "k1" });
  const tx: number = r.tx;
  const live: LiveQuery<{ todos: Todo[] }> = ab.live<{ todos: Todo[] }>({ todos: { $order: { createdAt: "asc" } } });
  const stop = live.subscribe((result) => result.todos.map((t) => t.done));
  stop();
  for await (const result of live) if (result.todos.length) break;
  const state: "connecting" | "open" | "offline" | "closed" = ab.connection.state;
  const room = ab.presence<{ name: string }>("doc-1");
  await room.enter({ name: "A" });
  (await room.list()).map((p) => p.userId);
  room.peers.map((p) => p.data.name);
  const me: string | null = room.me;
  await ab.storage.upload("a.txt", "hi", { onProgress: ({ loaded, total }) => loaded / total });
  const { url } = await ab.storage.signedUrl("a.txt");
  const { result } = await ab.functions.call<string>("createTodo", { title: "m" });
  const admin = createClient({ url: "http://127.0.0.1:7700", token: "admin-token" });
  const stats = await admin.request<{ connections: number }>("GET", "/api/admin/stats");
  await admin.request("PATCH", "/api/admin/users/u1", { locked: true });
  console.log(stats.connections);
  const pending: number = ab.outbox.pending;
  await ab.outbox.flush();
  ab.outbox.onChange((n: number) => n + 1)();
  const rows: Row[] = applyDiff([], { added: [{ id: "a" }], removed: [], updated: [] }, { createdAt: "asc" });
  try {
    await ab.query({ todos: {} });
  } catch (e) {
    if (e instanceof ActorbaseError) console.log(e.code, e.status, e.details);
  }
  console.log(titles, tx, state, me, url, result, pending, rows);
  ab.close();
}
void usage;
