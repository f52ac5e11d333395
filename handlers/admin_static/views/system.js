// Live system: requests/s, mutations/s, p50/p99 latencies, sockets, live queries and
// rooms, for the cluster or one node, charted every 2 s from /api/admin/pulse; and the
// presence rooms with their peers.
import { button, bytes, h, showError } from "../dom.js";
import { LineChart } from "../chart.js";
import { client } from "../session.js";

const get = (path) => client().request("GET", path);

const EVERY_MS = 2000;

export async function render(root) {
  const error = h("p", { class: "error", role: "alert" });
  const scope = h("select", { id: "scope" }, h("option", { value: "" }, "Cluster (all nodes)"));
  const summary = h("p", { class: "muted", id: "summary" });
  const charts = {
    rps: new LineChart("Requests/s", ["requests"]),
    mps: new LineChart("Mutations/s", ["mutations"]),
    rlat: new LineChart("Request latency", ["p50", "p99"], " ms"),
    mlat: new LineChart("Mutation latency", ["p50", "p99"], " ms"),
    sockets: new LineChart("Live", ["sockets", "subscriptions", "rooms"]),
  };
  const history = new Map(); // scope ("" for the cluster) → samples
  const rooms = h("div", { class: "scroll", id: "rooms" });
  const peers = h("section", { class: "card", id: "peers" });

  function redraw() {
    const samples = history.get(scope.value) || [];
    for (const c of Object.values(charts)) c.points = [];
    for (const s of samples) {
      charts.rps.points.push([s.requests.perSecond]);
      charts.mps.points.push([s.mutations.perSecond]);
      charts.rlat.points.push([s.requests.p50Ms, s.requests.p99Ms]);
      charts.mlat.points.push([s.mutations.p50Ms, s.mutations.p99Ms]);
      charts.sockets.points.push([s.sockets, s.subscriptions, s.rooms]);
    }
    for (const c of Object.values(charts)) c.render();
  }

  function keep(key, sample) {
    const list = history.get(key) || [];
    list.push(sample);
    if (list.length > 60) list.shift();
    history.set(key, list);
  }

  async function tick() {
    try {
      const [pulse, stats] = await Promise.all([get("/api/admin/pulse"), get("/api/admin/stats")]);
      keep("", pulse.cluster);
      for (const n of pulse.nodes) {
        keep(n.node, n);
        if (![...scope.options].some((o) => o.value === n.node)) scope.append(h("option", { value: n.node }, `Node ${n.node}`));
      }
      summary.textContent = `${pulse.nodes.length} node${pulse.nodes.length === 1 ? "" : "s"} · answering ${pulse.node} · ` +
        `${stats.users.total} users (${stats.users.activeToday} active today) · ${stats.storage.totalFiles} files, ${bytes(stats.storage.totalBytes)} · ` +
        `${stats.queries.total} queries, ${stats.mutations.total} mutations on this node`;
      redraw();
      showError(error, null);
    } catch (e) {
      showError(error, e);
    }
  }

  async function loadRooms() {
    try {
      const { rooms: list } = await get("/api/admin/rooms");
      rooms.replaceChildren(list.length
        ? h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Room"), h("th", { scope: "col" }, "Peers"))),
            h("tbody", {}, list.map((r) => h("tr", { "data-room": r.room },
              h("td", {}, button(r.room, () => showPeers(r.room), "secondary")), h("td", {}, String(r.peers))))))
        : h("p", { class: "muted" }, "No presence rooms with peers."));
    } catch (e) {
      showError(error, e);
    }
  }

  async function showPeers(room) {
    try {
      const { peers: list } = await get(`/api/presence/${encodeURIComponent(room)}`);
      peers.replaceChildren(h("h2", {}, `Peers in ${room}`),
        h("table", {}, h("tbody", {}, list.map((p) =>
          h("tr", {}, h("td", {}, p.id), h("td", {}, p.userId || "admin"), h("td", { class: "json" }, JSON.stringify(p.data)))))));
    } catch (e) {
      showError(error, e);
    }
  }

  scope.addEventListener("change", redraw);
  root.append(
    h("h1", {}, "Live system"),
    h("div", { class: "row" }, h("label", {}, "Show ", scope), button("Refresh rooms", loadRooms, "secondary")),
    summary, error,
    h("div", { class: "charts", id: "charts" }, Object.values(charts).map((c) => c.el)),
    h("h2", {}, "Presence rooms"),
    h("div", { class: "split" }, rooms, peers),
  );
  await tick();
  loadRooms();
  const timer = setInterval(() => { tick(); loadRooms(); }, EVERY_MS);
  return () => clearInterval(timer);
}
