// How long applyDiff takes for a 10,000-row live result and a 1,000-row q-diff
// (400 updated, half of them in the `$order` key; 300 added; 300 removed), ordered by
// two keys. Prints the median and p95 of RUNS applications, each on a fresh result.
// Usage: node bench/diff-apply.mjs [rows] [diffRows]
import { applyDiff, comparator } from "../src/index.js";

const ROWS = Number(process.argv[2] ?? 10_000);
const DIFF = Number(process.argv[3] ?? 1_000);
const RUNS = 50;
const order = { priority: "desc", createdAt: "asc" };
const cmp = comparator(order);

function row(i) {
  return { id: `row-${i}`, title: `Todo ${i}`, done: i % 3 === 0, priority: i % 10, createdAt: 1_700_000_000_000 + i };
}

function makeCase(seed) {
  const rows = Array.from({ length: ROWS }, (_, i) => row(i)).sort(cmp);
  const removed = [];
  const updated = [];
  const added = [];
  const nRemoved = Math.round(DIFF * 0.3);
  const nAdded = Math.round(DIFF * 0.3);
  const nUpdated = DIFF - nRemoved - nAdded;
  for (let k = 0; k < nRemoved; k++) removed.push(`row-${(seed + k * 31) % ROWS}`);
  for (let k = 0; k < nUpdated; k++) {
    const id = `row-${(seed + 7 + k * 23) % ROWS}`;
    updated.push(k % 2 ? { id, done: true } : { id, priority: (k * 7) % 10 });
  }
  for (let k = 0; k < nAdded; k++) added.push(row(ROWS + k));
  const skip = new Set(removed);
  return { rows, diff: { removed, added, updated: updated.filter((u) => !skip.has(u.id)) } };
}

const times = [];
for (let run = 0; run < RUNS + 5; run++) {
  const { rows, diff } = makeCase(run * 101);
  const t0 = performance.now();
  const out = applyDiff(rows, diff, order);
  const ms = performance.now() - t0;
  if (out.length !== ROWS - diff.removed.length + diff.added.length) throw new Error("wrong length");
  if (run >= 5) times.push(ms); // the first runs warm the JIT
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const p95 = times[Math.floor(times.length * 0.95)];
console.log(
  `applyDiff: ${ROWS} rows, ${DIFF}-row diff: median ${median.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms ` +
    `(${RUNS} runs, node ${process.version})`,
);
