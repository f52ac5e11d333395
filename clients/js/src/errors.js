/** Every failure the client reports: the server's `{error: {code, message, status}}`,
 * or NETWORK_ERROR (status 0) when the server could not be reached at all, which is
 * what tells the outbox to keep a write for later instead of dropping it. */
export class ActorbaseError extends Error {
  constructor({ code, message, status, details, retryAfter }) {
    super(message);
    this.name = "ActorbaseError";
    this.code = code;
    this.status = status;
    this.details = details;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }

  /** From a wire error object (REST body's `error`, WebSocket `mutate-error`/`error`). */
  static fromWire(error, status) {
    const e = error && typeof error === "object" ? error : {};
    return new ActorbaseError({
      code: e.code ?? "INTERNAL",
      message: e.message ?? `HTTP ${status}`,
      status: e.status ?? status ?? 0,
      details: e.details,
      retryAfter: e.retryAfter,
    });
  }

  static network(message) {
    return new ActorbaseError({ code: "NETWORK_ERROR", message, status: 0 });
  }
}

/** Whether retrying later may succeed: no answer, a server fault, or a rate limit. */
export function isTransient(error) {
  if (!(error instanceof ActorbaseError)) return false;
  return error.status === 0 || error.status >= 500 || error.code === "RATE_LIMITED";
}

/** The server refused a resume position (`since` past its current tx: a database
 * restored to an earlier point); the live query starts afresh. */
export function isBadSince(error) {
  return error?.code === "INVALID_ARGUMENT" && /^since\b/.test(error.message ?? "");
}
