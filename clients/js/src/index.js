import { Auth } from "./auth.js";
import { applyDiff } from "./diff.js";
import { ActorbaseError, isBadSince } from "./errors.js";
import { Http, encodePath } from "./http.js";
import { LiveQuery } from "./live.js";
import { Mutations, newId } from "./mutations.js";
import { comparator } from "./order.js";
import { defaultOutbox, fileOutbox, indexedDbOutbox, memoryOutbox } from "./outbox.js";
import { PresenceRoom } from "./presence.js";
import { LiveSocket } from "./socket.js";
import { SseFeed } from "./sse.js";
import { ConnectionState } from "./state.js";
import { Storage } from "./storage.js";
import { localStorageTokens, memoryTokens } from "./tokens.js";

export {
  ActorbaseError,
  applyDiff,
  comparator,
  fileOutbox,
  indexedDbOutbox,
  localStorageTokens,
  memoryOutbox,
  memoryTokens,
};

/** A client for one actorbase server. See README "JavaScript client". */
export function createClient(options) {
  return new Client(options);
}

class Client {
  #http;
  #socket;
  #mutations;
  #lives = new Map();
  #rooms = new Map();
  #transport;
  #counter = 0;
  #flushSoon;

  constructor({
    url,
    token,
    tokenStorage = memoryTokens(),
    outbox = defaultOutbox(),
    transport = "ws",
    WebSocket = globalThis.WebSocket,
    fetch = globalThis.fetch.bind(globalThis),
  } = {}) {
    if (!url) throw new TypeError("createClient: url is required");
    this.url = url.replace(/\/+$/, "");
    this.#transport = transport;
    this.auth = new Auth(tokenStorage, token);
    this.#http = new Http(this.url, fetch, this.auth);
    this.auth.bind(this.#http);
    this.connection = new ConnectionState();
    this.#socket = new LiveSocket(this.url, WebSocket, this.auth, this.connection);
    this.#route();
    this.#mutations = new Mutations(
      outbox,
      this.#http,
      this.#socket,
      () => this.#refreshAll(),
      () => this.auth.user?.id ?? null,
    );
    // Another user (or none): what live queries hold is not theirs to resume from.
    this.auth.onChange(() => {
      for (const { live } of this.#lives.values()) live.forgetPosition();
    });
    this.storage = new Storage(this.#http, this.auth);
    this.functions = {
      call: async (name, args = {}) =>
        this.#http.request("POST", `/api/fn/${encodeURIComponent(name)}`, { body: args }),
    };
    const mutations = this.#mutations;
    this.#flushSoon = () => mutations.flush();
    this.auth.onChange((user) => user && mutations.flush());
    globalThis.addEventListener?.("online", this.#flushSoon);
    this.outbox = {
      get pending() {
        return mutations.pending;
      },
      flush: () => mutations.flush(),
      onChange: (fn) => mutations.onChange(fn),
    };
  }

  /** REST on one entity: get, list, create, update (merge), remove. */
  data(entity) {
    const base = `/api/data/${encodeURIComponent(entity)}`;
    const http = this.#http;
    return {
      get: async (id) => (await http.request("GET", `${base}/${encodeURIComponent(id)}`)).data,
      /** {where, order, limit, offset | cursor} → {data, total, hasMore, cursor?}; `order`
       * is `-createdAt,title` or a `$order` object; `cursor` is the offset of the next page. */
      list: async ({ where, order, limit, offset, cursor } = {}) => {
        const params = new URLSearchParams();
        if (where !== undefined) params.set("where", JSON.stringify(where));
        if (order !== undefined) params.set("order", orderParam(order));
        if (limit !== undefined) params.set("limit", String(limit));
        const start = Number(cursor ?? offset ?? 0);
        if (start) params.set("offset", String(start));
        const q = params.toString();
        const page = await http.request("GET", base + (q ? `?${q}` : ""));
        if (page.hasMore) page.cursor = String(start + page.data.length);
        return page;
      },
      create: async (doc) => (await http.request("POST", base, { body: doc })).data,
      update: async (id, patch) =>
        (await http.request("PATCH", `${base}/${encodeURIComponent(id)}`, { body: patch })).data,
      remove: async (id) => {
        await http.request("DELETE", `${base}/${encodeURIComponent(id)}`);
      },
    };
  }

  /** Any endpoint: `body` sent as JSON, the reply's JSON returned, failures as
   * ActorbaseError (e.g. /api/admin/* with the admin token). `path` carries its query. */
  request(method, path, body) {
    return this.#http.request(method, path, { body });
  }

  query(query) {
    return this.#http.request("POST", "/api/query", { body: query });
  }

  /** `ops` as /api/mutate takes them. Shown at once in live results, queued in the
   * outbox, sent with `id` (generated if absent) as idempotency key; → {tx, results?}. */
  mutate(ops, options) {
    return this.#mutations.mutate(ops, options);
  }

  live(query) {
    const id = `q${++this.#counter}`;
    const live = new LiveQuery(
      id,
      query,
      { pending: () => this.#mutations.overlay(), userId: () => this.auth.user?.id ?? null },
      () => {
        this.#lives.delete(id);
        entry.stop();
      },
    );
    const entry = { live, stop: () => {} };
    this.#lives.set(id, entry);
    if (this.#transport === "sse") {
      const feed = new SseFeed(this.#http, live, this.connection);
      entry.stop = () => feed.close();
    } else {
      const subscribe = () =>
        this.#socket.send({ type: "subscribe", id, query, ...(live.tx !== null ? { since: live.tx } : {}) });
      const off = this.#socket.onOpen(subscribe);
      entry.stop = () => {
        off();
        this.#socket.send({ type: "unsubscribe", id });
      };
      this.#socket.start();
      if (this.#socket.isOpen) subscribe();
    }
    return live;
  }

  presence(room) {
    let r = this.#rooms.get(room);
    if (!r) {
      const path = `/api/presence/${encodeURIComponent(room)}`;
      r = new PresenceRoom(
        room,
        this.#socket,
        () => this.#http.request("GET", path),
        () => this.#rooms.delete(room),
      );
      this.#rooms.set(room, r);
    }
    return r;
  }

  /** Drop the live connection as a network failure would (it reconnects and resumes). */
  reconnect() {
    this.#socket.drop();
  }

  close() {
    for (const { live } of [...this.#lives.values()]) live.close();
    this.#mutations.close();
    globalThis.removeEventListener?.("online", this.#flushSoon);
    this.#socket.close();
    this.auth.close();
    this.connection.set("closed");
  }

  #refreshAll() {
    for (const { live } of this.#lives.values()) live.refresh();
  }

  #route() {
    const s = this.#socket;
    s.on("q-init", (m) => this.#lives.get(m.id)?.live.init(m.data, m.tx));
    s.on("q-diff", (m) => this.#lives.get(m.id)?.live.diff(m));
    s.on("presence-change", (m) => this.#rooms.get(m.room)?.change(m));
    s.on("error", (m) => {
      const error = m.error ?? m;
      const entry = m.id ? this.#lives.get(m.id) : undefined;
      if (entry) {
        if (isBadSince(error) && entry.live.tx !== null) {
          entry.live.forgetPosition();
          s.send({ type: "subscribe", id: m.id, query: entry.live.query });
        } else {
          entry.live.fail(error);
        }
        return;
      }
      for (const room of this.#rooms.values()) if (room.fail(m.id, error)) return;
    });
  }
}

function orderParam(order) {
  if (typeof order === "string") return order;
  return Object.entries(order)
    .map(([k, d]) => (d === "desc" ? `-${k}` : k))
    .join(",");
}

export { encodePath, newId };
