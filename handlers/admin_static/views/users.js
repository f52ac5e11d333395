// Users: search, role and claims, lock/unlock, MFA reset, sessions (device, IP) with
// revoke one or all. Every destructive action asks first.
import { button, confirmAction, h, showError } from "../dom.js";
import { client } from "../session.js";

const enc = encodeURIComponent;
const request = (method, path, body) => client().request(method, path, body);

export async function render(root) {
  const error = h("p", { class: "error", role: "alert" });
  const search = h("input", { id: "user-search", type: "search", placeholder: "email or id" });
  const list = h("div", { class: "scroll", id: "users" });
  const detail = h("section", { class: "card stack", id: "user-detail", "aria-live": "polite" });

  // A user's row stays the same element while the user is unchanged, so another
  // search's answer does not replace what the operator is about to click.
  let rows = new Map();
  function row(u) {
    const key = JSON.stringify(u);
    const kept = rows.get(u.id);
    if (kept && kept.key === key) return kept.tr;
    const tr = h("tr", { "data-user": u.id },
      h("td", {}, button(u.email, () => open(u.id), "secondary", { "aria-label": `Open ${u.email}` })),
      h("td", {}, u.role), h("td", {}, u.mfaEnabled ? "on" : "off"),
      h("td", {}, u.locked ? h("span", { class: "badge warn" }, "locked") : "active"),
      h("td", {}, u.createdAt));
    rows.set(u.id, { key, tr });
    return tr;
  }

  let searches = 0;
  async function find() {
    showError(error, null);
    const q = search.value.trim();
    const mine = ++searches;
    try {
      const { users, total } = await request("GET", `/api/admin/users?limit=100${q ? `&search=${enc(q)}` : ""}`);
      if (mine !== searches) return; // a newer search is under way: its answer shows
      rows = new Map([...rows].filter(([id]) => users.some((u) => u.id === id)));
      list.replaceChildren(
        h("p", { class: "muted" }, `${total} user${total === 1 ? "" : "s"}`),
        h("table", {},
          h("thead", {}, h("tr", {}, ["Email", "Role", "MFA", "Status", "Created"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, users.map(row))));
    } catch (e) {
      showError(error, e);
    }
  }

  async function open(id) {
    showError(error, null);
    let user, sessions;
    try {
      [user, { sessions }] = await Promise.all([
        request("GET", `/api/admin/users/${enc(id)}`),
        request("GET", `/api/admin/users/${enc(id)}/sessions`),
      ]);
    } catch (e) {
      return showError(error, e);
    }
    const role = h("input", { id: "role", value: user.role });
    const claims = h("textarea", { id: "claims", rows: 4, spellcheck: "false" }, JSON.stringify(user.claims, null, 2));
    const act = (fn) => async () => {
      try {
        await fn();
        await open(id);
        find();
      } catch (e) {
        showError(error, e);
      }
    };
    const ask = (text, fn) => act(async () => (await confirmAction(text)) && fn());
    detail.replaceChildren(
      h("h2", {}, user.email),
      h("p", { class: "muted" }, `id ${user.id} · created ${user.createdAt}`,
        user.locked ? h("span", { class: "badge warn", id: "locked-badge" }, " locked by an admin") : "",
        user.lockedUntil ? h("span", { class: "badge warn" }, ` sign-in lockout until ${user.lockedUntil}`) : ""),
      h("form", { class: "stack", onsubmit: (ev) => { ev.preventDefault(); act(() => request("PATCH", `/api/admin/users/${enc(id)}`, { role: role.value, claims: JSON.parse(claims.value || "{}") }))(); } },
        h("label", {}, "Role ", role), h("label", { for: "claims" }, "Claims (JSON)"), claims,
        h("div", {}, h("button", { type: "submit", id: "save-user" }, "Save role and claims"))),
      h("div", { class: "row" },
        user.locked
          ? button("Unlock", ask(`Unlock ${user.email}? They can sign in again.`, () => request("PATCH", `/api/admin/users/${enc(id)}`, { locked: false })), "secondary", { id: "unlock" })
          : button("Lock", ask(`Lock ${user.email}? Every session ends and sign-in is refused until unlocked.`, () => request("PATCH", `/api/admin/users/${enc(id)}`, { locked: true })), "danger", { id: "lock" }),
        button("Reset MFA", ask(`Turn MFA off for ${user.email}? They sign in with the password alone until they enroll again.`, () => request("DELETE", `/api/admin/users/${enc(id)}/mfa`)), "danger", { id: "reset-mfa", disabled: !user.mfaEnabled }),
        button("Revoke all sessions", ask(`Revoke all ${sessions.length} sessions of ${user.email}? Their sockets close.`, () => request("DELETE", `/api/admin/users/${enc(id)}/sessions`)), "danger", { id: "revoke-all", disabled: !sessions.length })),
      h("h2", {}, "Sessions"),
      sessions.length
        ? h("div", { class: "scroll" }, h("table", { id: "sessions" },
            h("thead", {}, h("tr", {}, ["Device", "IP", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, sessions.map((s) =>
              h("tr", { "data-session": s.id },
                h("td", {}, s.device), h("td", {}, s.ip), h("td", {}, s.lastUsedAt),
                h("td", {}, button("Revoke", ask(`Revoke the session on ${s.device} (${s.ip})? Its sockets close.`, () => request("DELETE", `/api/admin/users/${enc(id)}/sessions/${enc(s.id)}`)), "danger", { "aria-label": `Revoke session ${s.id}` })))))))
        : h("p", { class: "muted" }, "No live sessions."),
    );
  }

  root.append(
    h("h1", {}, "Users"),
    h("form", { class: "row", role: "search", onsubmit: (ev) => { ev.preventDefault(); find(); } },
      h("label", {}, "Search ", search), h("button", { type: "submit", id: "user-find" }, "Search")),
    error,
    h("div", { class: "split" }, list, detail),
  );
  detail.append(h("p", { class: "muted" }, "Choose a user."));
  await find();
}
