import { Emitter } from "./emitter.js";
import { ActorbaseError } from "./errors.js";

let counter = 0;

/** One presence room over the live socket: `peers` kept current from the server's
 * snapshot and join/update/leave deltas, `me` this socket's connection id (auth-ok's
 * `connectionId`). After a reconnect the room is entered again with the last state. */
export class PresenceRoom {
  #socket;
  #emitter = new Emitter();
  #peers = new Map();
  #state = null;
  #pending = new Map();
  #offOpen;
  #offClose;
  #onDone;
  #fetchRoom;

  /** `fetchRoom()` reads the room over REST (GET /api/presence/{room}). */
  constructor(room, socket, fetchRoom, onDone) {
    this.room = room;
    this.#fetchRoom = fetchRoom;
    this.#socket = socket;
    this.#onDone = onDone;
    this.#offOpen = socket.onOpen(() => {
      if (this.#state) this.#sendEnter();
    });
    // A lost socket fails pending updates; an enter waits for the re-enter instead.
    this.#offClose = socket.onClose((error) => {
      this.#peers.clear();
      this.#emitter.emit(this.peers);
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        if (p.peerUpdate) p.reject(error);
      }
    });
  }

  get peers() {
    return [...this.#peers.values()];
  }

  get me() {
    return this.#socket.connectionId;
  }

  onChange(fn) {
    return this.#emitter.on(fn);
  }

  /** The room's peers now, over REST, without entering it (e.g. to show who is there). */
  async list() {
    return (await this.#fetchRoom()).peers;
  }

  /** Join with `state`; resolves with the peers once the room's snapshot arrives (after
   * a reconnect, if the socket is down); rejects if the server refuses (a full room, a
   * `$rooms` rule). */
  enter(state = {}) {
    this.#state = state;
    const entered = new Promise((resolve, reject) => {
      this.#resolveEnter = resolve;
      this.#rejectEnter = reject;
    });
    this.#socket.start();
    if (this.#socket.isOpen) this.#sendEnter();
    return entered;
  }

  #resolveEnter = null;
  #rejectEnter = null;

  /** Replace this peer's state; resolves when the server has echoed it to the room. */
  update(state) {
    this.#state = state;
    if (!this.#socket.isOpen) return Promise.resolve(); // re-entered with it on reconnect
    return this.#request("presence-update", state);
  }

  async leave() {
    this.#state = null;
    if (this.#socket.isOpen) this.#socket.send({ type: "presence-leave", room: this.room });
    this.#peers.clear();
    this.#emitter.emit(this.peers);
  }

  close() {
    this.leave();
    this.#offOpen();
    this.#offClose();
    this.#onDone(this);
  }

  #sendEnter() {
    const id = `p${++counter}`;
    this.#pending.set(id, {
      resolve: () => {},
      reject: (error) => this.#rejectEnter?.(error),
    });
    this.#socket.send({ type: "presence-enter", id, room: this.room, data: this.#state });
  }

  #request(type, data) {
    const id = `p${++counter}`;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, peerUpdate: true });
      this.#socket.send({ type, id, room: this.room, data });
    });
  }

  // -- fed by the client's message routing --------------------------------------------------

  change(message) {
    if (message.peers) {
      this.#peers = new Map(message.peers.map((p) => [p.id, p]));
      for (const [id, p] of this.#pending) {
        if (!p.peerUpdate) this.#pending.delete(id);
      }
      this.#resolveEnter?.(this.peers);
      this.#resolveEnter = null;
    } else if (message.peer) {
      if (message.event === "leave") this.#peers.delete(message.peer.id);
      else this.#peers.set(message.peer.id, message.peer);
      if (message.peer.id === this.me && message.event === "update") {
        for (const [id, p] of this.#pending) {
          if (p.peerUpdate) {
            this.#pending.delete(id);
            p.resolve();
          }
        }
      }
    }
    this.#emitter.emit(this.peers);
  }

  /** An `error` message naming one of this room's requests. */
  fail(id, error) {
    const p = this.#pending.get(id);
    if (!p) return false;
    this.#pending.delete(id);
    p.reject(ActorbaseError.fromWire(error, error?.status));
    return true;
  }
}
