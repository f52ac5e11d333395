// Data: every entity with its count and attributes, a table filtered and ordered with
// the query language ($where, $order as JSON), cursor paging, create/edit/delete, and
// a live mode where the table follows the client's live query (rows kept in $order).
import { button, confirmAction, editJson, h, json, showError } from "../dom.js";
import { client } from "../session.js";

const SERVER_FIELDS = ["id", "createdAt", "updatedAt", "userId"];

export async function render(root) {
  const state = { entity: null, cursors: [null], page: 0, live: null, rows: [] };
  const error = h("p", { class: "error", role: "alert" });
  const entities = h("ul", { class: "list", id: "entities" });
  const attrs = h("div", { id: "attributes" });
  const where = h("textarea", { id: "where", rows: 2, spellcheck: "false" }, "{}");
  const order = h("input", { id: "order", value: '{"createdAt": "desc"}', size: 28 });
  const limit = h("input", { id: "limit", type: "number", min: 1, max: 1000, value: 20 });
  const liveBox = h("input", { id: "live", type: "checkbox" });
  const status = h("span", { class: "muted", id: "status", "aria-live": "polite" });
  const table = h("div", { class: "scroll", id: "rows" });
  const prev = button("Previous page", () => load(state.page - 1), "secondary", { id: "prev" });
  const next = button("Next page", () => load(state.page + 1), "secondary", { id: "next" });

  const query = () => {
    const q = { $where: JSON.parse(where.value || "{}"), $limit: Number(limit.value) || 20 };
    const o = JSON.parse(order.value || "{}");
    if (Object.keys(o).length) q.$order = o;
    return q;
  };

  async function loadSchema() {
    const { entities: list } = await client().request("GET", "/api/admin/schema");
    entities.replaceChildren(
      ...list.map((e) =>
        h("li", {}, button([h("span", {}, e.name), h("span", { class: "badge" }, String(e.count))],
          () => select(e), "", { "aria-pressed": String(state.entity === e.name), "data-entity": e.name })),
      ),
    );
    if (!list.length) entities.append(h("li", { class: "muted" }, "No entities yet: create a row."));
    return list;
  }

  function select(e) {
    state.entity = e.name;
    for (const b of entities.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.entity === e.name));
    attrs.replaceChildren(
      h("h2", {}, `${e.name} · ${e.count} rows`),
      h("p", { class: "muted" },
        e.attributes.map((a) => `${a.name}: ${a.type} (${a.count})`).join(" · ") || "no attributes",
        e.relations.length ? ` · links: ${e.relations.map((r) => `${r.name} → ${r.target}`).join(", ")}` : ""),
    );
    state.cursors = [null];
    liveBox.checked = false;
    stopLive();
    load(0);
  }

  async function load(page) {
    if (!state.entity) return;
    showError(error, null);
    try {
      const q = { ...query() };
      if (state.cursors[page]) q.$after = state.cursors[page];
      const result = await client().query({ [state.entity]: q });
      state.page = page;
      state.cursors[page + 1] = (result.$cursors || {})[state.entity] || null;
      draw(result[state.entity] || [], new Set());
      status.textContent = `page ${page + 1} · tx ${result.tx}`;
    } catch (e) {
      showError(error, e);
    }
  }

  function draw(rows, changed) {
    state.rows = rows;
    const cols = [];
    for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
    cols.sort((a, b) => rank(a) - rank(b));
    table.replaceChildren(
      h("table", {},
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)), h("th", {}, "Actions"))),
        h("tbody", {}, rows.map((r) =>
          h("tr", { "data-id": r.id, class: changed.has(r.id) ? "flash" : null },
            cols.map((c) => h("td", { class: "json", title: json(r[c]) }, json(r[c]))),
            h("td", {},
              button("Edit", () => edit(r), "secondary", { "aria-label": `Edit ${r.id}` }), " ",
              button("Delete", () => remove(r), "danger", { "aria-label": `Delete ${r.id}` }))))),
      ),
    );
    if (!rows.length) table.append(h("p", { class: "muted" }, "No rows match."));
    prev.disabled = !!state.live || state.page === 0;
    next.disabled = !!state.live || !state.cursors[state.page + 1];
  }

  async function edit(row) {
    const body = Object.fromEntries(Object.entries(row).filter(([k]) => !SERVER_FIELDS.includes(k)));
    await editJson(`Edit ${state.entity}/${row.id} (JSON)`, body, async (value) => {
      const patch = { ...value };
      for (const k of Object.keys(body)) if (!(k in value)) patch[k] = null; // removed keys
      await client().data(state.entity).update(row.id, patch);
    }).then((saved) => saved && !state.live && load(state.page));
  }

  async function remove(row) {
    if (!(await confirmAction(`Delete ${state.entity}/${row.id}? This cannot be undone.`))) return;
    try {
      await client().data(state.entity).remove(row.id);
      if (!state.live) load(state.page);
    } catch (e) {
      showError(error, e);
    }
  }

  async function create() {
    const name = state.entity || prompt("New entity name");
    if (!name) return;
    const saved = await editJson(`New row in ${name} (JSON; "id" optional)`, {}, (value) =>
      client().data(name).create(value));
    if (saved) {
      const list = await loadSchema();
      const e = list.find((x) => x.name === name);
      if (state.entity !== name && e) select(e);
      else if (!state.live) load(state.page);
    }
  }

  function stopLive() {
    if (state.live) state.live.stop();
    state.live = null;
  }

  function toggleLive() {
    stopLive();
    if (!liveBox.checked || !state.entity) return load(0);
    const entity = state.entity;
    try {
      const ab = client();
      const live = ab.live({ [entity]: query() });
      status.textContent = "live: connecting";
      const offState = ab.connection.onChange((s) => s !== "open" && (status.textContent = `live: ${s}`));
      const offRows = live.subscribe(
        (result) => {
          // the client keeps unchanged rows as they were: a new object is a changed row
          const before = new Map(state.rows.map((r) => [r.id, r]));
          const rows = result[entity] || [];
          const changed = live.inits + live.diffs > 1 ? rows.filter((r) => before.get(r.id) !== r) : [];
          draw(rows, new Set(changed.map((r) => r.id)));
          status.textContent = `live: live · tx ${live.tx}`;
        },
        (e) => (status.textContent = `live: error: ${e.message}`),
      );
      state.live = { stop: () => (offRows(), offState(), live.close()) };
    } catch (e) {
      liveBox.checked = false;
      showError(error, e);
    }
  }
  liveBox.addEventListener("change", toggleLive);

  root.append(
    h("div", { class: "layout" },
      h("section", { class: "card", "aria-labelledby": "entities-h" }, h("h1", { id: "entities-h" }, "Entities"), entities),
      h("section", { class: "stack" },
        attrs,
        h("form", { class: "row card", id: "filter", onsubmit: (ev) => { ev.preventDefault(); state.cursors = [null]; liveBox.checked ? toggleLive() : load(0); } },
          h("label", {}, "$where (JSON)", where),
          h("label", {}, "$order (JSON)", order),
          h("label", {}, "Rows per page", limit),
          h("button", { type: "submit", id: "apply" }, "Apply"),
          h("label", { class: "row" }, liveBox, " Live"),
          button("New row", create, "secondary", { id: "new-row" })),
        error, status, table, h("div", { class: "row" }, prev, next)),
    ),
  );
  try {
    const list = await loadSchema();
    if (list.length) select(list[0]);
  } catch (e) {
    showError(error, e);
  }
  return stopLive;
}

function rank(col) {
  const i = ["id"].indexOf(col);
  if (i >= 0) return -1;
  return SERVER_FIELDS.includes(col) ? 1000 : 0;
}
