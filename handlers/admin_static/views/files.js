// Files: browse by path prefix (folders from the paths), upload, preview images and
// download through signed URLs (the URL carries a signature, never the admin token),
// delete after a confirmation.
import { button, bytes, confirmAction, h, showError } from "../dom.js";
import { client } from "../session.js";

export async function render(root) {
  const state = { cursors: [null], page: 0 };
  const error = h("p", { class: "error", role: "alert" });
  const prefix = h("input", { id: "prefix", placeholder: "images/", size: 30 });
  const crumbs = h("nav", { class: "row", "aria-label": "Folders", id: "folders" });
  const list = h("div", { class: "scroll", id: "files" });
  const preview = h("section", { class: "card preview", id: "preview", "aria-live": "polite" });
  const file = h("input", { id: "upload-file", type: "file" });
  const path = h("input", { id: "upload-path", placeholder: "folder/name.png", size: 30 });
  const next = button("Next page", () => load(state.page + 1), "secondary", { id: "files-next" });
  const prev = button("Previous page", () => load(state.page - 1), "secondary");

  file.addEventListener("change", () => {
    if (file.files[0] && !path.value) path.value = prefix.value + file.files[0].name;
  });

  async function load(page = 0) {
    showError(error, null);
    try {
      const result = await client().storage.list({ prefix: prefix.value, limit: 50, cursor: state.cursors[page] ?? undefined });
      state.page = page;
      state.cursors[page + 1] = result.cursor || null;
      draw(result.files);
    } catch (e) {
      showError(error, e);
    }
  }

  function go(p) {
    prefix.value = p;
    state.cursors = [null];
    load(0);
  }

  function draw(files) {
    const folders = new Set();
    for (const f of files) {
      const rest = f.path.slice(prefix.value.length);
      const i = rest.indexOf("/");
      if (i > 0) folders.add(prefix.value + rest.slice(0, i + 1));
    }
    const parts = prefix.value.split("/").filter(Boolean);
    crumbs.replaceChildren(
      button("/", () => go(""), "secondary"),
      ...parts.map((p, i) => button(p + "/", () => go(parts.slice(0, i + 1).join("/") + "/"), "secondary")),
      ...[...folders].map((f) => button(`📁 ${f.slice(prefix.value.length)}`, () => go(f), "secondary")),
    );
    list.replaceChildren(
      h("table", {},
        h("thead", {}, h("tr", {}, ["Path", "Size", "Type", "Updated", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, files.map((f) =>
          h("tr", { "data-path": f.path },
            h("td", {}, f.path), h("td", {}, bytes(f.size)), h("td", {}, f.contentType), h("td", {}, f.updatedAt),
            h("td", {},
              button("Preview", () => show(f), "secondary", { "aria-label": `Preview ${f.path}` }), " ",
              button("Download", () => download(f), "secondary", { "aria-label": `Download ${f.path}` }), " ",
              button("Delete", () => remove(f), "danger", { "aria-label": `Delete ${f.path}` })))))));
    if (!files.length) list.append(h("p", { class: "muted" }, "No files here."));
    prev.disabled = state.page === 0;
    next.disabled = !state.cursors[state.page + 1];
  }

  const signed = async (f) => (await client().storage.signedUrl(f.path, { expiresIn: 600 })).url;

  async function show(f) {
    try {
      const url = await signed(f);
      preview.replaceChildren(h("h2", {}, f.path), f.contentType.startsWith("image/")
        ? h("img", { src: url, alt: `Preview of ${f.path}`, id: "preview-img" })
        : h("p", {}, `${f.contentType}, ${bytes(f.size)}: no preview; `, h("a", { href: url, rel: "noreferrer", target: "_blank" }, "open it")));
    } catch (e) {
      showError(error, e);
    }
  }

  async function download(f) {
    try {
      const a = h("a", { href: await signed(f), download: f.path.split("/").pop(), rel: "noreferrer" });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      showError(error, e);
    }
  }

  async function remove(f) {
    if (!(await confirmAction(`Delete ${f.path}? This cannot be undone.`))) return;
    try {
      await client().storage.remove(f.path);
      preview.replaceChildren();
      load(state.page);
    } catch (e) {
      showError(error, e);
    }
  }

  async function upload(ev) {
    ev.preventDefault();
    showError(error, null);
    if (!file.files[0] || !path.value) return showError(error, { code: "INVALID_ARGUMENT", message: "Choose a file and a path" });
    try {
      const done = await client().storage.upload(path.value, file.files[0]);
      path.value = "";
      file.value = "";
      await load(0);
      show({ path: done.path, contentType: done.contentType, size: done.size });
    } catch (e) {
      showError(error, e);
    }
  }

  root.append(
    h("h1", {}, "Files"),
    h("form", { class: "row card", id: "upload", onsubmit: upload },
      h("label", {}, "File ", file), h("label", {}, "Path ", path), h("button", { type: "submit", id: "upload-go" }, "Upload")),
    h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); go(prefix.value); } },
      h("label", {}, "Path prefix ", prefix), h("button", { type: "submit", id: "browse" }, "Browse")),
    crumbs, error,
    h("div", { class: "split" }, h("div", { class: "stack" }, list, h("div", { class: "row" }, prev, next)), preview),
  );
  await load(0);
}
