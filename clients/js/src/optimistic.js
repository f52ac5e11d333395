import { applyDiff } from "./diff.js";
import { matches } from "./match.js";

/** Pending writes laid over one entity's confirmed rows: what the user sees before the
 * server answers. Only this entity's ops count; a `set` is shown if it matches the
 * query's `$where`, a `merge` only for a row already in the result (the rest of the row
 * is unknown here), and the `$limit` is kept. Rows nested by links are left as the
 * server sent them. */
export function applyOps(rows, ops, spec, cmp, userId) {
  const mine = ops.filter((op) => op.entity === spec.entity);
  if (!mine.length) return rows;
  const index = new Map(rows.map((r) => [r.id, r]));
  const changed = new Map();
  const now = Date.now();
  for (const op of mine) {
    const current = changed.has(op.id) ? changed.get(op.id) : (index.get(op.id) ?? null);
    let next = null;
    // System fields are the server's: a new row gets a createdAt (so it sorts where
    // the server will put it, near enough) but no updatedAt until the server's version.
    if (op.op === "set") {
      next = {
        createdAt: current?.createdAt ?? now,
        ...(current?.updatedAt !== undefined ? { updatedAt: current.updatedAt } : {}),
        userId: current?.userId ?? userId ?? null,
        ...op.data,
        id: op.id,
      };
    } else if (op.op === "merge") {
      if (!current) continue;
      next = deepMerge(current, op.data ?? {});
    }
    changed.set(op.id, next && matches(spec.where, next) ? project(next, spec.fields) : null);
  }
  const diff = { removed: [], added: [], updated: [] };
  for (const [id, row] of changed) {
    if (index.has(id)) diff.removed.push(id);
    if (row) diff.added.push(row);
  }
  const out = applyDiff(rows, diff, cmp);
  return out.length > spec.limit ? out.slice(0, spec.limit) : out;
}

/** The server's merge: nested objects merge, null removes a key. */
function deepMerge(base, changes) {
  const out = { ...base };
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete out[key];
    else if (isObject(value) && isObject(out[key])) out[key] = deepMerge(out[key], value);
    else out[key] = value;
  }
  return out;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function project(row, fields) {
  if (!fields) return row;
  const out = { id: row.id };
  for (const f of fields) if (f in row) out[f] = row[f];
  return out;
}
