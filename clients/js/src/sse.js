import { Backoff, timer } from "./backoff.js";
import { ActorbaseError, isBadSince } from "./errors.js";


/** A live query over Server-Sent Events (transport "sse"), read with fetch so the token
 * goes in a header, not the URL. On every reconnect (dropped stream, server restart, an
 * `event: close` when the token expired) it refreshes the token as needed and resumes
 * with `?since=<last tx>`: one q-diff when the tx log still holds the gap. */
export class SseFeed {
  #http;
  #live;
  #state;
  #abort = null;
  #backoff = new Backoff();
  #retry = null;
  #closed = false;
  #onOnline = () => this.#reconnectNow();

  constructor(http, live, state) {
    this.#http = http;
    this.#live = live;
    this.#state = state;
    globalThis.addEventListener?.("online", this.#onOnline);
    this.#open();
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#retry);
    globalThis.removeEventListener?.("online", this.#onOnline);
    this.#abort?.abort();
  }

  #reconnectNow() {
    if (this.#retry) {
      clearTimeout(this.#retry);
      this.#retry = null;
      this.#backoff.reset();
      this.#open();
    }
  }

  async #open() {
    this.#retry = null;
    if (this.#closed) return;
    this.#state.set("connecting");
    const abort = new AbortController();
    this.#abort = abort;
    let params = `q=${encodeURIComponent(JSON.stringify(this.#live.query))}`;
    if (this.#live.tx !== null) params += `&since=${this.#live.tx}`;
    try {
      const response = await this.#http.request("GET", `/api/subscribe?${params}`, {
        headers: { Accept: "text/event-stream" },
        signal: abort.signal,
        raw: true,
      });
      this.#state.set("open");
      this.#backoff.reset();
      // Ends when the server stops or the token expires (`event: close` 4001): the
      // reconnect below takes a fresh token (Http renews it) and resumes from `tx`.
      await this.#read(response);
    } catch (error) {
      if (this.#closed) return;
      if (isBadSince(error) && this.#live.tx !== null) {
        this.#live.forgetPosition(); // resume refused: start afresh at once
        this.#open();
        return;
      }
      if (error instanceof ActorbaseError && !isRetryable(error)) {
        this.#live.fail(error);
        return;
      }
    }
    if (this.#closed) return;
    this.#state.set("offline");
    this.#retry = timer(() => this.#open(), this.#backoff.next());
  }

  /** Applies frames until the stream ends. */
  async #read(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trimStart();
        }
        if (!data) continue;
        const message = JSON.parse(data);
        if (event === "q-init") this.#live.init(message.data, message.tx);
        else if (event === "q-diff") this.#live.diff(message);
        else if (event === "error") this.#live.fail(message.error ?? message);
      }
    }
  }
}

function isRetryable(error) {
  return error.status === 0 || error.status >= 500 || error.status === 429 || error.status === 401;
}

