import { comparator, orderKeys } from "./order.js";

/** Apply one q-diff to a result kept in order, without re-sorting it: rows are looked
 * up by id, the rows that move (added, or updated in a field `$order` reads) are sorted
 * among themselves and merged back in one pass. O(n + k log k) for n rows and a diff of
 * k: a 10,000-row result takes a 1,000-row diff in a few milliseconds.
 *
 * Pure: `rows` is not changed; unchanged rows are shared with the returned array,
 * changed ones are new objects. `order` is a `$order` object (or a comparator).
 * Semantics are the server's: `removed` first, then `added` (full rows), then `updated`
 * (the id and changed top-level fields; a null deletes the field). */
export function applyDiff(rows, diff, order) {
  const cmp = typeof order === "function" ? order : comparator(order);
  const orderFields =
    typeof order === "function" ? null : new Set(orderKeys(order).map((k) => k.path[0]));
  const removed = diff.removed ?? [];
  const added = diff.added ?? [];
  const updated = diff.updated ?? [];
  if (!removed.length && !added.length && !updated.length) return rows;

  const drop = new Set(removed);
  const incoming = new Map();
  for (const row of added) {
    drop.add(row.id);
    incoming.set(row.id, row);
  }
  const patches = new Map();
  for (const fields of updated) {
    const target = incoming.get(fields.id);
    if (target) incoming.set(fields.id, patch(target, fields));
    else patches.set(fields.id, { ...patches.get(fields.id), ...fields });
  }

  const kept = [];
  const moving = [...incoming.values()];
  for (const row of rows) {
    const p = patches.get(row.id);
    if (drop.has(row.id)) continue;
    if (p === undefined) {
      kept.push(row);
      continue;
    }
    const next = patch(row, p);
    if (orderFields === null || Object.keys(p).some((k) => orderFields.has(k))) moving.push(next);
    else kept.push(next);
  }
  if (!moving.length) return kept;
  moving.sort(cmp);
  return merge(kept, moving, cmp);
}

/** `row` with `fields` assigned; a null value removes the field (the server's PATCH). */
export function patch(row, fields) {
  const next = { ...row };
  for (const key in fields) {
    if (fields[key] === null) delete next[key];
    else next[key] = fields[key];
  }
  return next;
}

/** Two sorted arrays as one; binary search skips long runs of `a` (k ≪ n). */
function merge(a, b, cmp) {
  const out = new Array(a.length + b.length);
  let i = 0;
  let o = 0;
  for (const row of b) {
    // first index in a[i..] that sorts after `row`
    let lo = i;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cmp(a[mid], row) <= 0) lo = mid + 1;
      else hi = mid;
    }
    while (i < lo) out[o++] = a[i++];
    out[o++] = row;
  }
  while (i < a.length) out[o++] = a[i++];
  return out;
}
