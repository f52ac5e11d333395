import { applyDiff } from "./diff.js";
import { Emitter } from "./emitter.js";
import { ActorbaseError } from "./errors.js";
import { applyOps } from "./optimistic.js";
import { comparator } from "./order.js";

/** One live query: the server's result as of `tx` (q-init, then each q-diff applied in
 * `$order`), with the client's pending writes laid over it. Callbacks and async
 * iterators see the visible result; a transport (WebSocket or SSE) feeds it and, on
 * reconnect, resumes from `tx` so the server sends only what changed meanwhile. */
export class LiveQuery {
  #emitter = new Emitter();
  #errors = new Emitter();
  #closing = new Emitter();
  #base = null;
  #specs;
  #overlay;
  #onClose;

  /** `overlay()` gives the pending mutations ({ops, tx}); `onClose` detaches it. */
  constructor(id, query, overlay, onClose) {
    this.id = id;
    this.query = query;
    this.#overlay = overlay;
    this.#onClose = onClose;
    this.#specs = Object.entries(query).map(([entity, q]) => ({
      entity,
      where: q?.$where,
      fields: q?.$fields,
      limit: q?.$limit ?? 100,
      cmp: comparator(q?.$order),
    }));
    this.tx = null;
    this.result = null;
    this.error = null;
    this.closed = false;
    this.inits = 0;
    this.diffs = 0;
  }

  /** `fn(result)` on every change (and at once if a result is there); returns the stop. */
  subscribe(fn, onError) {
    const off = this.#emitter.on(fn);
    const offError = onError ? this.#errors.on(onError) : () => {};
    if (this.result) fn(this.result);
    return () => {
      off();
      offError();
    };
  }

  /** Successive results; a slow consumer gets the newest one, not every step. */
  [Symbol.asyncIterator]() {
    let latest = this.result;
    let failed = null;
    let wake = null;
    const offResult = this.#emitter.on((r) => {
      latest = r;
      wake?.();
    });
    const offError = this.#errors.on((e) => {
      failed = e;
      wake?.();
    });
    const offClose = this.#closing.on(() => wake?.());
    const done = () => {
      offResult();
      offError();
      offClose();
      return { value: undefined, done: true };
    };
    return {
      next: async () => {
        while (!latest && !failed && !this.closed) {
          await new Promise((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
        if (failed) {
          done();
          throw failed;
        }
        if (latest) {
          const value = latest;
          latest = null;
          return { value, done: false };
        }
        return done();
      },
      return: async () => done(),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.#onClose(this);
    this.#closing.emit();
  }

  // -- fed by the transport ---------------------------------------------------------------

  /** q-init: the result replaces what was held. */
  init(data, tx) {
    this.#base = {};
    for (const spec of this.#specs) {
      const rows = data[spec.entity] ?? [];
      // The server sends rows in order; sort only if they are not (cheap check).
      this.#base[spec.entity] = isSorted(rows, spec.cmp) ? rows : [...rows].sort(spec.cmp);
    }
    this.tx = tx;
    this.inits += 1;
    this.refresh();
  }

  /** q-diff: one entity's changes (`entity` names it on a query of several). */
  diff(message) {
    if (!this.#base) return;
    const entity = message.entity ?? this.#specs[0].entity;
    const spec = this.#specs.find((s) => s.entity === entity);
    if (spec) this.#base[entity] = applyDiff(this.#base[entity], message, spec.cmp);
    if (message.tx !== undefined && (this.tx === null || message.tx > this.tx)) this.tx = message.tx;
    this.diffs += 1;
    this.refresh();
  }

  /** Forget the position (the server refused to resume from it, e.g. a database
   * restored to an earlier tx): the next subscribe asks for a fresh q-init. */
  forgetPosition() {
    this.tx = null;
  }

  fail(error) {
    this.error = error instanceof ActorbaseError ? error : ActorbaseError.fromWire(error, 400);
    this.#errors.emit(this.error);
  }

  /** Recompute the visible result (after a frame, or when pending writes change). */
  refresh() {
    if (!this.#base) return;
    const ops = this.#overlay
      .pending()
      .filter((m) => m.tx === null || this.tx === null || this.tx < m.tx)
      .flatMap((m) => m.ops);
    const result = {};
    for (const spec of this.#specs) {
      const rows = this.#base[spec.entity];
      result[spec.entity] = ops.length
        ? applyOps(rows, ops, spec, spec.cmp, this.#overlay.userId())
        : rows;
    }
    this.result = result;
    this.#emitter.emit(result);
  }
}

function isSorted(rows, cmp) {
  for (let i = 1; i < rows.length; i++) if (cmp(rows[i - 1], rows[i]) > 0) return false;
  return true;
}
