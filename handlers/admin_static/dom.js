// Small DOM helpers: h() builds elements (text is always text, never HTML), confirm()
// and editJson() are the two dialogs every destructive action or edit goes through.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function button(label, onclick, cls = "", attrs = {}) {
  return h("button", { type: "button", class: cls, onclick, ...attrs }, label);
}

export function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }),
  );
}

// Resolves with the parsed JSON, or null if cancelled; `check` may throw to keep it open.
export function editJson(title, value, check = async () => {}) {
  const dialog = document.getElementById("editor");
  const text = document.getElementById("editor-text");
  const error = document.getElementById("editor-error");
  document.getElementById("editor-title").textContent = title;
  text.value = JSON.stringify(value, null, 2);
  error.textContent = "";
  dialog.returnValue = "";
  dialog.showModal();
  text.focus();
  return new Promise((resolve) => {
    const ok = document.getElementById("editor-ok");
    const onOk = async (event) => {
      event.preventDefault();
      try {
        const parsed = JSON.parse(text.value);
        await check(parsed);
        cleanup();
        dialog.close("ok");
        resolve(parsed);
      } catch (e) {
        error.textContent = e.message;
      }
    };
    const onClose = () => {
      cleanup();
      if (dialog.returnValue !== "ok") resolve(null);
    };
    const cleanup = () => {
      ok.removeEventListener("click", onOk);
      dialog.removeEventListener("close", onClose);
    };
    ok.addEventListener("click", onOk);
    dialog.addEventListener("close", onClose);
  });
}

export function showError(el, e) {
  el.textContent = e ? `${e.code || "ERROR"}: ${e.message}` : "";
}

export function json(value) {
  return value === undefined ? "" : JSON.stringify(value);
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
