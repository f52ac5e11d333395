// applyDiff against the obvious implementation (patch every row, sort all) on random
// results and diffs; and the comparator against the server's cross-type order rules.
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyDiff, comparator } from "../src/index.js";

function rng(seed) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

const VALUES = [undefined, null, false, true, -1, 0, 2.5, 3, "", "a", "B", "é", "😀", "\uffff", [1], { a: 1 }];

function naive(rows, diff, cmp) {
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const id of diff.removed) byId.delete(id);
  for (const r of diff.added) byId.set(r.id, r);
  for (const u of diff.updated) {
    const next = { ...byId.get(u.id) };
    for (const [k, v] of Object.entries(u)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    byId.set(u.id, next);
  }
  return [...byId.values()].sort(cmp);
}

test("applyDiff equals patch-then-sort on random diffs", () => {
  const random = rng(42);
  const pick = () => VALUES[Math.floor(random() * VALUES.length)];
  const order = { a: "desc", b: "asc" };
  const cmp = comparator(order);
  for (let round = 0; round < 200; round++) {
    let rows = [];
    for (let i = 0; i < 60; i++) {
      const r = { id: `r${i}` };
      if (pick() !== undefined) r.a = pick();
      r.b = pick();
      rows.push(r);
    }
    rows = rows.sort(cmp);
    const ids = rows.map((r) => r.id);
    const removed = ids.filter(() => random() < 0.1);
    const rest = ids.filter((id) => !removed.includes(id));
    const updated = rest.filter(() => random() < 0.2).map((id) => ({ id, [random() < 0.5 ? "a" : "c"]: pick() ?? null }));
    const added = Array.from({ length: Math.floor(random() * 8) }, (_, k) => ({ id: `n${round}-${k}`, a: pick(), b: pick() }));
    const diff = { removed, added, updated };
    assert.deepEqual(applyDiff(rows, diff, order), naive(rows, diff, cmp));
  }
});

test("the server's order: missing/null < booleans < numbers < strings < arrays = objects, then id", () => {
  const rows = [
    { id: "s2", v: "b" },
    { id: "o", v: { x: 1 } },
    { id: "n", v: 2 },
    { id: "t", v: true },
    { id: "m" },
    { id: "f", v: false },
    { id: "a", v: [1] },
    { id: "z", v: null },
    { id: "s1", v: "B" },
    { id: "e", v: "😀" },
    { id: "u", v: "\uffff" },
  ];
  const sorted = [...rows].sort(comparator({ v: "asc" })).map((r) => r.id);
  assert.deepEqual(sorted, ["m", "z", "f", "t", "n", "s1", "s2", "u", "e", "a", "o"]);
  const desc = [...rows].sort(comparator({ v: "desc" })).map((r) => r.id);
  // desc reverses the value order; ties (arrays/objects, null/missing) still by id asc
  assert.deepEqual(desc, ["a", "o", "e", "u", "s2", "s1", "n", "t", "f", "m", "z"]);
});
