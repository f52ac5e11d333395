// The dashboard shell: sign in and out, and the hash router (#/data, #/users, ...).
// Views are modules with render(root) returning an optional cleanup function.
import { client, session } from "./session.js";

const views = {
  data: () => import("./views/data.js"),
  users: () => import("./views/users.js"),
  files: () => import("./views/files.js"),
  live: () => import("./views/system.js"),
  app: () => import("./views/app.js"),
};
let cleanup = null;

const $ = (id) => document.getElementById(id);

function showSignedIn(yes) {
  $("signin").hidden = yes;
  $("nav").hidden = !yes;
  $("signout").hidden = !yes;
  if (!yes) {
    $("view").replaceChildren();
    $("token").focus();
  }
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  if (!session.get()) return showSignedIn(false);
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "data";
  const load = views[name] || views.data;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const module = await load();
  const view = $("view");
  view.replaceChildren();
  const rendering = module.render(view);
  showSignedIn(true); // once the view has its controls (render adds them before it awaits)
  cleanup = (await rendering) || null;
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  $("token").value = "";
  session.set(token);
  try {
    await client().request("GET", "/api/admin/stats");
    $("signin-error").textContent = "";
    route();
  } catch (e) {
    session.clear();
    $("signin-error").textContent =
      e.status === 401 || e.status === 403 ? "That is not the admin token." : e.message;
  }
});

$("signout").addEventListener("click", () => {
  session.clear();
  if (cleanup) cleanup();
  cleanup = null;
  showSignedIn(false);
});

window.addEventListener("hashchange", route);
route();
