// The client's $where (used to place optimistic rows) and $order (used to keep live
// results) against the server's answers for the same rows.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { matches } from "../src/match.js";
import { comparator } from "../src/order.js";
import { BACKENDS, Server, signedIn } from "./server.js";

const VALUES = [null, true, false, 0, 1, 2.5, -3, "", "a", "B", "abc", "a%c", "ÅÉ", [1, 2], { k: 1 }];
const WHERES = [
  { v: 1 },
  { v: null },
  { v: [1, 2] },
  { v: { k: 1 } },
  { v: { $ne: null } },
  { v: { $ne: 1 } },
  { v: { $gt: 0 } },
  { v: { $lte: "a" } },
  { v: { $gte: "B", $lt: "b" } },
  { v: { $in: [1, "a", null] } },
  { v: { $nin: [true, 2.5] } },
  { v: { $like: "a%" } },
  { v: { $like: "a\\%c" } },
  { v: { $ilike: "AB_" } },
  { v: { $ilike: "åé" } },
  { v: { $exists: true } },
  { v: { $exists: false } },
  { v: { $isNull: true } },
  { v: { $isNull: false } },
  { v: { $not: { $gt: 0 } } },
  { "o.x": { $gte: 1 } },
  { $or: [{ v: true }, { "o.x": 2 }] },
  { $and: [{ v: { $exists: true } }, { $not: { v: "a" } }] },
];

for (const backend of BACKENDS) {
  describe(`client $where and $order (${backend})`, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    test("match and sort as the server does", async () => {
      const ab = await signedIn(server);
      const ops = VALUES.map((v, i) => ({ entity: "vals", id: `v${i}`, op: "set", data: { v, o: { x: i % 3 } } }));
      ops.push({ entity: "vals", id: "missing", op: "set", data: { o: "not an object" } });
      await ab.mutate(ops);
      const { vals: rows } = await ab.query({ vals: { $limit: 1000 } });
      for (const where of WHERES) {
        const server = await ab.query({ vals: { $where: where, $limit: 1000 } });
        const expected = server.vals.map((r) => r.id).sort();
        const actual = rows.filter((r) => matches(where, r)).map((r) => r.id).sort();
        assert.deepEqual(actual, expected, JSON.stringify(where));
      }
      for (const order of [{ v: "asc" }, { v: "desc" }, { "o.x": "desc", v: "asc" }, { o: "asc" }]) {
        const server = await ab.query({ vals: { $order: order, $limit: 1000 } });
        const sorted = [...rows].sort(comparator(order));
        assert.deepEqual(sorted.map((r) => r.id), server.vals.map((r) => r.id), JSON.stringify(order));
      }
      ab.close();
    });
  });
}
