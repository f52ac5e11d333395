/** Where queued mutations wait until the server has them: `{load(): entries in order,
 * put(entry), delete(id)}` (each may return a promise). An entry is `{id, ops, seq,
 * userId}` (who made it: it is sent only while they are signed in);
 * `id` is the idempotency key every retry of it carries, so a write whose
 * acknowledgement was lost is not applied twice. */

export function memoryOutbox() {
  const entries = new Map();
  return {
    load: () => [...entries.values()].sort((a, b) => a.seq - b.seq),
    put: (entry) => {
      entries.set(entry.id, entry);
    },
    delete: (id) => {
      entries.delete(id);
    },
  };
}

/** Node: a JSON file, rewritten whole (temp file + rename) on each change, so a crash
 * leaves the old list or the new one. */
export function fileOutbox(path) {
  let entries = null;
  let writing = Promise.resolve();
  const fs = import("node:fs/promises");
  const load = async () => {
    if (entries) return entries;
    try {
      entries = JSON.parse(await (await fs).readFile(path, "utf8"));
    } catch {
      entries = [];
    }
    return entries;
  };
  const save = () => {
    const text = JSON.stringify(entries);
    writing = writing.then(async () => {
      const { writeFile, rename } = await fs;
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, path);
    });
    return writing;
  };
  return {
    load: async () => [...(await load())].sort((a, b) => a.seq - b.seq),
    put: async (entry) => {
      await load();
      entries = entries.filter((e) => e.id !== entry.id).concat([entry]);
      await save();
    },
    delete: async (id) => {
      await load();
      entries = entries.filter((e) => e.id !== id);
      await save();
    },
  };
}

/** Browser: an IndexedDB object store (database `name`), one record per entry. */
export function indexedDbOutbox(name = "actorbase-outbox") {
  let db = null;
  const open = () => {
    db ??= new Promise((resolve, reject) => {
      const request = globalThis.indexedDB.open(name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore("outbox", { keyPath: "id" });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return db;
  };
  const run = async (mode, fn) => {
    const store = (await open()).transaction("outbox", mode).objectStore("outbox");
    return new Promise((resolve, reject) => {
      const request = fn(store);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  };
  return {
    load: async () => (await run("readonly", (s) => s.getAll())).sort((a, b) => a.seq - b.seq),
    put: (entry) => run("readwrite", (s) => s.put(entry)),
    delete: (id) => run("readwrite", (s) => s.delete(id)),
  };
}

/** IndexedDB where there is one (browsers), else memory. */
export function defaultOutbox() {
  return globalThis.indexedDB ? indexedDbOutbox() : memoryOutbox();
}
