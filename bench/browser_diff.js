// bench/browser_diff.py's page script (selenium's execute_async_script): applyDiff
// timed on a 10,000-row result, two 1,000-row diffs.
const [runs, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  let source = "/clients/js/src/index.js";
  let applyDiff = (await import(source).catch(() => ({}))).applyDiff;
  if (!applyDiff) {
    source = "/clients/js/src/diff.js";
    applyDiff = (await import(source)).applyDiff;
  }
  const N = 10000;
  const row = (i, priority) => ({
    id: `t${String(i).padStart(6, "0")}`, title: `todo ${i}`, done: false, priority,
    createdAt: 1.7e12 + i * 10, updatedAt: 1.7e12 + i * 10, userId: "usr_bench",
  });
  const base = Array.from({ length: N }, (_, i) => row(i, i));
  const toggle = {
    removed: Array.from({ length: 200 }, (_, j) => base[j * 50].id),
    added: Array.from({ length: 200 }, (_, j) => ({ ...row(N + j, 0), createdAt: 1.7e12 + j * 500 + 5 })),
    updated: Array.from({ length: 600 }, (_, j) => ({ id: base[j * 16 + 1].id, done: true, updatedAt: 1.8e12 })),
  };
  const reorder = {
    removed: [], added: [],
    updated: Array.from({ length: 1000 }, (_, j) => ({ id: base[j * 10].id, priority: N - j * 7.5 })),
  };
  const cases = { toggle: [toggle, { createdAt: "asc" }], reorder: [reorder, { priority: "asc" }] };
  const out = { source };
  for (const [name, [diff, order]] of Object.entries(cases)) {
    const times = [];
    let result;
    for (let r = 0; r < runs + 5; r++) {
      const t0 = performance.now();
      result = applyDiff(base, diff, order);
      const t = performance.now() - t0;
      if (r >= 5) times.push(t);
    }
    const key = Object.keys(order)[0];
    const sorted = result.every((x, i) => i === 0 || result[i - 1][key] <= x[key]);
    out[name] = { times, rows: result.length, sorted };
  }
  done(out);
})().catch((e) => done({ error: String(e && e.stack || e) }));
