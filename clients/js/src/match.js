import { compareStrings, getPath } from "./order.js";

/** A `$where` evaluated on the client, as the server's matcher does (docs/query.md), so
 * an optimistic write shows in exactly the live results it will land in. */
export function matches(where, row) {
  if (!where) return true;
  for (const [key, cond] of Object.entries(where)) {
    if (key === "$and") {
      if (!cond.every((w) => matches(w, row))) return false;
    } else if (key === "$or") {
      if (!cond.some((w) => matches(w, row))) return false;
    } else if (key === "$not") {
      if (matches(cond, row)) return false;
    } else if (!matchPath(getPath(row, key.split(".")), cond)) {
      return false;
    }
  }
  return true;
}

function isOperators(cond) {
  return (
    cond !== null &&
    typeof cond === "object" &&
    !Array.isArray(cond) &&
    Object.keys(cond).length > 0 &&
    Object.keys(cond).every((k) => k.startsWith("$"))
  );
}

function matchPath(value, cond) {
  if (!isOperators(cond)) return equal(value, cond);
  return Object.entries(cond).every(([op, operand]) => matchOp(value, op, operand));
}

function matchOp(value, op, operand) {
  switch (op) {
    case "$eq":
      return equal(value, operand);
    case "$ne":
      return !equal(value, operand);
    case "$gt":
    case "$gte":
    case "$lt":
    case "$lte": {
      if (typeof value !== typeof operand || value === undefined) return false;
      const c = typeof value === "string" ? compareStrings(value, operand) : value - operand;
      return op === "$gt" ? c > 0 : op === "$gte" ? c >= 0 : op === "$lt" ? c < 0 : c <= 0;
    }
    case "$in":
      return operand.some((x) => equal(value, x));
    case "$nin":
      return !operand.some((x) => equal(value, x));
    case "$like":
    case "$ilike":
      return typeof value === "string" && likeRegex(operand, op === "$ilike").test(value);
    case "$exists":
      return (value !== undefined) === operand;
    case "$isNull":
      return (value === undefined || value === null) === operand;
    case "$not":
      return !matchPath(value, operand);
    default:
      return true; // an operator this client does not know: let the server decide
  }
}

/** JSON equality; null equals missing; arrays and objects by canonical JSON. */
function equal(value, operand) {
  if (operand === null) return value === null || value === undefined;
  if (value === undefined || value === null) return false;
  if (typeof operand !== "object") return value === operand;
  return typeof value === "object" && canonical(value) === canonical(operand);
}

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const likeCache = new Map();

function likeRegex(pattern, fold) {
  const cacheKey = (fold ? "i" : "s") + pattern;
  let regex = likeCache.get(cacheKey);
  if (!regex) {
    let out = "";
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i];
      if (c === "%") out += "[\\s\\S]*";
      else if (c === "_") out += "[\\s\\S]";
      else {
        const literal = c === "\\" && i + 1 < pattern.length ? pattern[++i] : c;
        // $ilike folds ASCII letters only, as the server does.
        if (fold && /[A-Za-z]/.test(literal)) out += `[${literal.toLowerCase()}${literal.toUpperCase()}]`;
        else out += literal.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
      }
    }
    regex = new RegExp(`^${out}$`, "u");
    if (likeCache.size > 256) likeCache.clear();
    likeCache.set(cacheKey, regex);
  }
  return regex;
}
