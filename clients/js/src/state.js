import { Emitter } from "./emitter.js";

/** The connection state an app shows: "connecting" | "open" | "offline" | "closed". */
export class ConnectionState {
  #emitter = new Emitter();

  constructor() {
    this.state = "closed";
  }

  set(state) {
    if (state === this.state) return;
    this.state = state;
    this.#emitter.emit(state);
  }

  onChange(fn) {
    return this.#emitter.on(fn);
  }
}
