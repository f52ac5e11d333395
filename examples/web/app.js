// The todo example: one user's todos, live, written optimistically, queued offline.
// Uses nothing but the JS client (loaded straight from its source, no build step).
// Open index.html?server=http://127.0.0.1:7700 with the server's CORS_ORIGINS allowing
// this page's origin (README, "Browser quickstart").
import {
  createClient,
  indexedDbOutbox,
  localStorageTokens,
} from "../../clients/js/src/index.js";

const params = new URLSearchParams(location.search);
const serverUrl = (params.get("server") || "http://127.0.0.1:7700").replace(/\/+$/, "");
// One token slot and one outbox per server, so two servers never mix their users.
const storeName = `actorbase-todos:${serverUrl}`;

const ab = createClient({
  url: serverUrl,
  tokenStorage: localStorageTokens(storeName),
  outbox: indexedDbOutbox(storeName),
});

// Oldest first; $limit defaults to 100 rows, 1,000 is the most one query may hold.
const QUERY = { todos: { $order: { createdAt: "asc" }, $limit: 1000 } };

const $ = (id) => document.getElementById(id);
let live = null;
let stopLive = null;
const inFlight = new Map(); // row id -> mutations on it not answered yet

// What the browser tests (and a curious developer) read; nothing here steers the app.
const debug = {
  client: ab,
  results: 0, // live results received
  txs: [], // live.tx at each result, in order
  duplicates: 0, // results that held one id twice
  // The live query's id and the q-init / q-diff frames the client applied to it.
  applied: () => live && { id: live.id, inits: live.inits, diffs: live.diffs },
  mutations: [], // {id, rowId, op, state: pending|ok|error, tx, error}, in the order made
  states: [], // connection states, in order
  log: [], // {what: "shown"|"answered", id}: the order rows appeared and writes were answered
  rows: () => (live?.result?.todos ?? []).map((row) => ({ ...row })),
};
window.__todo_debug = debug;

function uuid() {
  // crypto.randomUUID needs a secure context; getRandomValues works on any origin.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function showError(err) {
  $("error").textContent = err ? (err.code ? `${err.code}: ${err.message}` : String(err)) : "";
}

function showState(state) {
  debug.states.push(state);
  $("state").textContent = state;
  $("state").dataset.state = state;
}

function showOutbox() {
  $("outbox").textContent = String(ab.outbox.pending);
}

function item(row) {
  const li = document.createElement("li");
  li.dataset.id = row.id;
  li.classList.toggle("done", Boolean(row.done));
  li.classList.toggle("pending", inFlight.has(row.id));
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "toggle";
  box.checked = Boolean(row.done);
  box.addEventListener("change", () => write(row.id, "merge", { done: box.checked }));
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = row.title ?? "";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => write(row.id, "delete"));
  li.append(box, title, remove);
  return li;
}

function paint() {
  const rows = live?.result?.todos ?? [];
  const shown = new Set([...$("todos").children].map((li) => li.dataset.id));
  for (const row of rows) if (!shown.has(row.id)) debug.log.push({ what: "shown", id: row.id });
  $("todos").replaceChildren(...rows.map(item));
}

function onResult(result) {
  const rows = result.todos ?? [];
  debug.results += 1;
  debug.txs.push(live.tx);
  const ids = new Set();
  for (const row of rows) ids.add(row.id);
  if (ids.size !== rows.length) debug.duplicates += 1;
  paint();
}

function write(rowId, op, data) {
  const id = uuid();
  const record = { id, rowId, op, state: "pending", tx: null, error: null };
  debug.mutations.push(record);
  inFlight.set(rowId, (inFlight.get(rowId) ?? 0) + 1);
  const done = () => {
    debug.log.push({ what: "answered", id: rowId });
    const left = inFlight.get(rowId) - 1;
    if (left) inFlight.set(rowId, left);
    else inFlight.delete(rowId);
    paint();
  };
  ab.mutate([{ entity: "todos", id: rowId, op, ...(data ? { data } : {}) }], { id }).then(
    ({ tx }) => {
      Object.assign(record, { state: "ok", tx });
      done();
    },
    (err) => {
      // The client has rolled the optimistic change back; say why.
      Object.assign(record, { state: "error", error: err.code ?? String(err) });
      showError(err);
      done();
    },
  );
  paint();
}

function start() {
  if (live) return;
  live = ab.live(QUERY);
  stopLive = live.subscribe(onResult);
}

function stop() {
  stopLive?.();
  live?.close();
  live = null;
  stopLive = null;
  $("todos").replaceChildren();
}

function showUser(user) {
  $("auth").hidden = Boolean(user);
  $("app").hidden = !user;
  $("who").hidden = !user;
  $("email").textContent = user ? (user.email ?? user.id) : "";
  if (user) start();
  else stop();
}

async function signIn(kind) {
  showError(null);
  const email = $("auth-email").value.trim();
  const password = $("auth-password").value;
  try {
    const answer = await ab.auth[kind]({ email, password });
    if (answer.mfaRequired) showError("This account uses MFA, which the example does not ask for.");
  } catch (err) {
    showError(err);
  }
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn("signIn");
});
$("signup").addEventListener("click", () => {
  if ($("auth").reportValidity()) signIn("signUp");
});
$("signout").addEventListener("click", () => ab.auth.signOut().catch(showError));
$("add").addEventListener("submit", (event) => {
  event.preventDefault();
  const title = $("title").value.trim();
  if (!title) return;
  $("title").value = "";
  write(uuid(), "set", { title, done: false });
});

ab.connection.onChange(showState);
showState(ab.connection.state);
ab.auth.onChange(showUser);
showUser(ab.auth.user);
ab.outbox.onChange(showOutbox);
showOutbox();
