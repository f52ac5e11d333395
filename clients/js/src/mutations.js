import { Backoff, timer } from "./backoff.js";
import { ActorbaseError, isTransient } from "./errors.js";
import { Emitter } from "./emitter.js";
import { parseBody } from "./http.js";

/** How long an acknowledged write stays laid over a live result that has not yet had a
 * diff at or past its tx (the write changed nothing the query shows, or the diff is
 * slow): then the server's result alone is shown. */
const SETTLE_MS = 5000;

let counter = 0;

/** A random id usable as an idempotency key (crypto.randomUUID needs a secure context). */
export function newId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The write path: every mutation is put in the outbox store first, shown at once in
 * the live results (optimistic), then sent in order, one at a time, over the live
 * socket when it is open, else over REST, always with its id as idempotency key. A
 * network failure leaves it queued (retried with backoff, on reconnect, on `online`);
 * a refusal (mutate-error / 4xx) drops it and rolls its optimistic effect back. */
export class Mutations {
  #store;
  #http;
  #socket;
  #refresh;
  #queue = [];
  #settling = [];
  #waiters = new Map();
  #inflight = new Map();
  #flushing = null;
  #again = false;
  #backoff = new Backoff({ base: 500, max: 15_000 });
  #retry = null;
  #ready;
  #closed = false;
  #userId;
  #changes = new Emitter();

  /** `refresh()` recomputes every live result (the pending set changed); `userId()`
   * is who is signed in: a write is sent only as the user who made it. */
  constructor(store, http, socket, refresh, userId) {
    this.#userId = userId;
    this.#store = store;
    this.#http = http;
    this.#socket = socket;
    this.#refresh = refresh;
    socket.on("mutate-ok", (m) => this.#answer(m.id, null, m));
    socket.on("mutate-error", (m) => this.#answer(m.id, m.error ?? m, null));
    socket.onOpen(() => this.flush());
    socket.onClose((error) => {
      for (const id of this.#inflight.keys()) this.#answer(id, error, null);
    });
    this.#ready = Promise.resolve(store.load()).then((entries) => {
      this.#queue = [...entries.map((e) => ({ ...e, tx: null })), ...this.#queue];
      if (entries.length) {
        this.#changes.emit(this.#queue.length);
        this.#refresh();
        this.flush();
      }
    });
  }

  get pending() {
    return this.#queue.length;
  }

  /** `fn(pending)` whenever the number of queued mutations changes. */
  onChange(fn) {
    return this.#changes.on(fn);
  }

  /** Pending writes for the live overlay: queued (tx null) and acknowledged ones whose
   * diff may not have arrived yet. */
  overlay() {
    return this.#queue.length || this.#settling.length
      ? [...this.#settling, ...this.#queue]
      : [];
  }

  async mutate(ops, { id } = {}) {
    if (!Array.isArray(ops)) {
      throw new ActorbaseError({ code: "INVALID_ARGUMENT", message: "ops: must be an array", status: 400 });
    }
    await this.#ready;
    const seq = Date.now() * 1000 + (counter++ % 1000);
    const entry = { id: id ?? newId(), ops, seq, userId: this.#userId(), tx: null };
    const done = new Promise((resolve, reject) => this.#waiters.set(entry.id, { resolve, reject }));
    await this.#store.put({ id: entry.id, ops, seq, userId: entry.userId });
    this.#queue.push(entry);
    this.#changes.emit(this.#queue.length);
    this.#refresh();
    this.flush();
    return done;
  }

  /** Send everything queued; resolves when the queue is empty or the server is out of
   * reach (then a retry is scheduled). */
  flush() {
    this.#again = true;
    this.#flushing ??= this.#loop();
    return this.#flushing;
  }

  /** Runs the queue until no flush was asked for meanwhile; clears `#flushing` in the
   * same step as it decides to stop, so a flush asked for after that starts anew. */
  async #loop() {
    try {
      while (this.#again) {
        this.#again = false;
        await this.#run();
      }
    } finally {
      this.#flushing = null;
    }
  }

  async #run() {
    await this.#ready;
    for (;;) {
      // Another user's writes wait for them to sign in again.
      const user = this.#userId();
      const entry = this.#queue.find((e) => !e.userId || e.userId === user);
      if (!entry || this.#closed) return;
      let outcome;
      try {
        outcome = await this.#send(entry);
      } catch (error) {
        if (isTransient(error) || error.code === "UNAUTHENTICATED") {
          this.#scheduleRetry();
          return;
        }
        await this.#settle(entry);
        this.#refresh(); // the optimistic effect is rolled back
        this.#waiters.get(entry.id)?.reject(error);
        this.#waiters.delete(entry.id);
        continue;
      }
      this.#backoff.reset();
      entry.tx = outcome.tx;
      await this.#settle(entry);
      this.#settling.push(entry);
      timer(() => {
        this.#settling = this.#settling.filter((e) => e !== entry);
        this.#refresh();
      }, SETTLE_MS);
      this.#refresh();
      this.#waiters.get(entry.id)?.resolve(outcome);
      this.#waiters.delete(entry.id);
    }
  }

  async #settle(entry) {
    this.#queue = this.#queue.filter((e) => e !== entry);
    this.#changes.emit(this.#queue.length);
    await this.#store.delete(entry.id);
  }

  #send(entry) {
    if (this.#socket.isOpen) {
      const answer = new Promise((resolve, reject) => this.#inflight.set(entry.id, { resolve, reject }));
      const sent = this.#socket.send({ type: "mutate", id: entry.id, idempotencyKey: entry.id, ops: entry.ops });
      if (sent) return answer;
      this.#inflight.delete(entry.id);
    }
    return this.#rest(entry);
  }

  async #rest(entry) {
    const response = await this.#http.request("POST", "/api/mutate", {
      body: { ops: entry.ops },
      headers: { "Idempotency-Key": entry.id },
      raw: true,
    });
    const outcome = await parseBody(response);
    if (response.headers.get("Idempotent-Replayed") === "true") outcome.replayed = true;
    return outcome;
  }

  #answer(id, error, ok) {
    const waiter = this.#inflight.get(id);
    if (!waiter) return;
    this.#inflight.delete(id);
    if (ok) waiter.resolve({ tx: ok.tx, ...(ok.replayed ? { replayed: true } : {}) });
    else waiter.reject(error instanceof ActorbaseError ? error : ActorbaseError.fromWire(error, 400));
  }

  #scheduleRetry() {
    if (this.#retry || this.#closed) return;
    this.#retry = timer(() => {
      this.#retry = null;
      this.flush();
    }, this.#backoff.next());
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#retry);
  }
}
