/** Row order exactly as the server sorts (store/query/match.py `compare`): each `$order`
 * key in turn, across types missing/null < booleans < numbers < strings < arrays =
 * objects, strings by Unicode code point, `desc` reversing, then `id` ascending. */

const DEFAULT_ORDER = { createdAt: "asc" };

/** The value at a dotted path, or undefined where the row has none. */
export function getPath(row, path) {
  let value = row;
  for (const segment of path) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(value, segment)) return undefined;
    value = value[segment];
  }
  return value;
}

function rank(value) {
  if (value === undefined || value === null) return 0;
  switch (typeof value) {
    case "boolean":
      return 1;
    case "number":
      return 2;
    case "string":
      return 3;
    default:
      return 4;
  }
}

/** Strings by code point: UTF-16 `<` differs only between a surrogate and U+E000..FFFF. */
export function compareStrings(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function compareValues(a, b) {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (ra === 1 || ra === 2) return a === b ? 0 : a < b ? -1 : 1;
  if (ra === 3) return compareStrings(a, b);
  return 0;
}

/** Parsed `$order` (`{field: "asc"|"desc"}`, key order = precedence) as [{path, desc}]. */
export function orderKeys(order) {
  const entries = Object.entries(order && Object.keys(order).length ? order : DEFAULT_ORDER);
  return entries.map(([key, dir]) => ({ key, path: key.split("."), desc: dir === "desc" }));
}

/** A comparator for rows under `$order`. */
export function comparator(order) {
  const keys = orderKeys(order);
  return (a, b) => {
    for (const { path, desc } of keys) {
      const c = compareValues(getPath(a, path), getPath(b, path));
      if (c !== 0) return desc ? -c : c;
      if (path.length === 1 && path[0] === "id") return 0;
    }
    return compareStrings(a.id, b.id);
  };
}
