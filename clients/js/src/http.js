import { ActorbaseError } from "./errors.js";

/** JSON over fetch with the session's bearer token: errors become ActorbaseError, and a
 * 401 refreshes the token (once, shared by every request that met it) and retries. */
export class Http {
  constructor(baseUrl, fetchImpl, auth) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.fetch = fetchImpl;
    this.auth = auth;
  }

  url(path) {
    return this.baseUrl + path;
  }

  /** `body` is sent as JSON; `raw` returns the Response (for 2xx) instead of its body. */
  async request(method, path, { body, headers = {}, auth = true, signal, raw = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      const token = auth ? await this.auth.accessToken() : null;
      const userId = this.auth.user?.id ?? null;
      const h = { ...headers };
      if (token) h.Authorization = `Bearer ${token}`;
      if (body !== undefined) h["Content-Type"] = "application/json";
      let response;
      try {
        response = await this.fetch(this.url(path), {
          method,
          headers: h,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
        });
      } catch (error) {
        if (error?.name === "AbortError") throw error;
        throw ActorbaseError.network(`${method} ${path}: ${error?.message ?? error}`);
      }
      if (response.status === 401 && token && attempt === 0) {
        // Read (and so drain) the refusal now: it is the error if no re-send follows.
        const refused = await errorOf(response);
        if (await this.auth.refreshAfter401(token, userId)) continue;
        throw refused;
      }
      if (!response.ok) throw await errorOf(response);
      if (raw) return response;
      return parseBody(response);
    }
  }
}

export async function parseBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export async function errorOf(response) {
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const error = ActorbaseError.fromWire(body?.error, response.status);
  if (error.retryAfter === undefined && response.headers.get("Retry-After")) {
    error.retryAfter = Number(response.headers.get("Retry-After"));
  }
  return error;
}

/** Each path segment percent-encoded, slashes kept (storage paths). */
export function encodePath(path) {
  return String(path).split("/").map(encodeURIComponent).join("/");
}
