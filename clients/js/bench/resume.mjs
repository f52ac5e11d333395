// What a reconnect after a server restart costs the live socket: a 1,000-row live
// query, the server restarted, 10 rows changed meanwhile; the client resumes from its
// last tx. Prints the frames and bytes of the resume against those of the q-init a
// plain resubscribe gets. Starts its own server (SQLite, temp dir) from the repo root.
// Usage: node bench/resume.mjs [rows]
import WebSocket from "ws";
import { Server, gatedWebSocket, signedIn, until } from "../test/server.js";

const ROWS = Number(process.argv[2] ?? 1000);
const server = await new Server("sqlite").start();
try {
  const wire = { frames: 0, bytes: 0, types: {} };
  const gate = gatedWebSocket();
  const Counting = class extends gate.WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        const text = String(e.data);
        const type = JSON.parse(text).type;
        wire.frames += 1;
        wire.bytes += Buffer.byteLength(text);
        wire.types[type] = (wire.types[type] ?? 0) + 1;
      });
    }
  };
  const ab = await signedIn(server, { WebSocket: Counting });
  for (let i = 0; i < ROWS; i += 500) {
    const ops = [];
    for (let j = i; j < Math.min(ROWS, i + 500); j++) {
      ops.push({ entity: "rows", id: `r${j}`, op: "set", data: { n: j, title: `row ${j}` } });
    }
    await ab.mutate(ops);
  }
  const query = { rows: { $order: { n: "asc" }, $limit: Math.min(ROWS, 1000) } };
  const live = ab.live(query);
  await until(() => live.result, 30_000, "q-init");
  const init = { ...wire, types: { ...wire.types } };

  await server.stop();
  await until(() => ab.connection.state === "offline", 10_000, "offline");
  gate.open = false;
  await server.start();
  const other = await signedIn(server, { WebSocket });
  await other.auth.signIn({ email: ab.email, password: "correct horse battery" });
  for (let k = 0; k < 10; k++) {
    await other.mutate([{ entity: "rows", id: `r${k * 7}`, op: "merge", data: { title: `changed ${k}` } }]);
  }
  const expected = await other.query(query);
  Object.assign(wire, { frames: 0, bytes: 0, types: {} });
  gate.open = true;
  await until(() => live.tx >= expected.tx, 30_000, "resume");
  const same = JSON.stringify(live.result.rows) === JSON.stringify(expected.rows);
  const fmt = (w) => `${w.frames} frames ${JSON.stringify(w.types)}, ${w.bytes} bytes`;
  console.log(`live query of ${query.rows.$limit} rows; 10 rows changed while the client was away`);
  console.log(`first subscribe: ${fmt(init)}`);
  console.log(`resume after restart: ${fmt(wire)}; result equals the server's: ${same}; q-inits ${live.inits}`);
  ab.close();
  other.close();
} finally {
  await server.destroy();
}
