// App: the loaded app's schema, rules and functions, read-only, and a runner that
// calls a function (as the admin) with arguments checked against its schema.
import { h, showError } from "../dom.js";
import { client } from "../session.js";

export async function render(root) {
  const error = h("p", { class: "error", role: "alert" });
  root.append(h("h1", {}, "App"), error);
  let app;
  try {
    app = await client().request("GET", "/api/admin/app");
  } catch (e) {
    return showError(error, e);
  }
  const pre = (id, value) => h("pre", { id, tabindex: "0" }, JSON.stringify(value, null, 2));
  root.append(
    h("p", { class: "muted" }, app.app ? `APP=${app.app}` : "No APP loaded: schemaless entities, owner-only rules."),
    h("div", { class: "split" },
      h("section", {}, h("h2", {}, "Schema"), pre("app-schema", app.schema)),
      h("section", {}, h("h2", {}, "Rules"), pre("app-rules", app.rules))),
    h("h2", {}, "Functions"),
    app.functions.length ? h("div", { class: "stack" }, app.functions.map(runner)) : h("p", { class: "muted" }, "No server functions."),
  );
}

function runner(fn) {
  const props = fn.arguments.properties || {};
  const example = Object.fromEntries(Object.entries(props).map(([k, s]) => [k, sample(s)]));
  const args = h("textarea", { id: `args-${fn.name}`, rows: 4, spellcheck: "false" }, JSON.stringify(example, null, 2));
  const out = h("pre", { id: `result-${fn.name}`, "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert" });
  async function run(ev) {
    ev.preventDefault();
    showError(error, null);
    out.textContent = "";
    try {
      out.textContent = JSON.stringify(await client().functions.call(fn.name, JSON.parse(args.value || "{}")), null, 2);
    } catch (e) {
      showError(error, e);
      if (e.details) out.textContent = JSON.stringify(e.details, null, 2);
    }
  }
  return h("form", { class: "card stack", onsubmit: run, "data-function": fn.name },
    h("h3", {}, fn.name),
    h("details", {}, h("summary", {}, "Argument schema"), h("pre", {}, JSON.stringify(fn.arguments, null, 2))),
    h("label", { for: `args-${fn.name}` }, "Arguments (JSON)"), args,
    h("div", {}, h("button", { type: "submit" }, `Run ${fn.name}`)), error, out);
}

function sample(schema) {
  const type = schema.type || (schema.anyOf && schema.anyOf[0].type);
  return { string: "", integer: 0, number: 0, boolean: false, array: [], object: {} }[type] ?? null;
}
