// A live query over the WebSocket: auth by message (never the URL), subscribe, then
// apply each q-diff (removed, then added, then updated) to the rows held.
// (To move onto the @actorbase/client JS library's ab.live() once it is merged.)
import { session } from "./session.js";

export class LiveQuery {
  constructor(entity, query, onRows, onState) {
    Object.assign(this, { entity, query, onRows, onState, rows: [], tx: null, closed: false });
    this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = (this.ws = new WebSocket(`${scheme}://${location.host}/ws`));
    this.onState("connecting");
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: session.get() }));
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => {
      this.onState(this.closed ? "closed" : `closed (${event.code})`);
      if (!this.closed && event.code !== 4001) setTimeout(() => !this.closed && this.open(), 1000);
    };
  }

  receive(msg) {
    const ws = this.ws;
    if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
    else if (msg.type === "auth-ok") {
      ws.send(JSON.stringify({ type: "subscribe", id: "live", query: { [this.entity]: this.query } }));
    } else if (msg.type === "q-init") {
      this.rows = msg.data[this.entity] || [];
      this.tx = msg.tx;
      this.onState("live");
      this.onRows(this.rows, new Set());
    } else if (msg.type === "q-diff") {
      this.apply(msg);
    } else if (msg.type === "error" || msg.type === "auth-error") {
      this.onState(`error: ${msg.error ? msg.error.message : msg.message}`);
    }
  }

  apply({ added = [], updated = [], removed = [], tx }) {
    const gone = new Set(removed.map((r) => (typeof r === "string" ? r : r.id)));
    let rows = this.rows.filter((r) => !gone.has(r.id));
    rows = rows.concat(added);
    const changed = new Set(added.map((r) => r.id));
    for (const patch of updated) {
      const i = rows.findIndex((r) => r.id === patch.id);
      if (i < 0) continue;
      const row = { ...rows[i] };
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete row[k];
        else row[k] = v;
      }
      rows[i] = row;
      changed.add(patch.id);
    }
    this.rows = sortRows(rows, this.query.$order);
    this.tx = tx;
    this.onRows(this.rows, changed);
  }

  close() {
    this.closed = true;
    this.ws.close();
  }
}

export function sortRows(rows, order) {
  const keys = Object.entries(order || {});
  if (!keys.length) return rows;
  const get = (row, path) => path.split(".").reduce((v, k) => (v == null ? v : v[k]), row);
  return [...rows].sort((a, b) => {
    for (const [key, dir] of keys) {
      const x = get(a, key), y = get(b, key);
      if (x === y) continue;
      const less = x == null || (y != null && x < y);
      return (less ? -1 : 1) * (dir === "desc" ? -1 : 1);
    }
    return 0;
  });
}
