/** Token storage: where the session's tokens live between page loads. A store is
 * `{get(): object|null, set(object), clear()}`; the object is
 * `{accessToken, refreshToken, user, expiresAt}` (expiresAt in local ms). */

export function memoryTokens() {
  let value = null;
  return {
    get: () => value,
    set: (v) => {
      value = v;
    },
    clear: () => {
      value = null;
    },
  };
}

/** Browser: keeps the session in localStorage under `key` (survives reloads). */
export function localStorageTokens(key = "actorbase.session") {
  return {
    get() {
      const raw = globalThis.localStorage?.getItem(key);
      try {
        return raw ? JSON.parse(raw) : null;
      } catch {
        return null;
      }
    },
    set(v) {
      globalThis.localStorage?.setItem(key, JSON.stringify(v));
    },
    clear() {
      globalThis.localStorage?.removeItem(key);
    },
  };
}

/** When an access token expires, in local time: its lifetime (exp - iat) counted from
 * now, so a client clock that is off does not matter. */
export function localExpiry(accessToken, now = Date.now()) {
  const payload = claims(accessToken);
  if (typeof payload?.exp === "number" && typeof payload?.iat === "number") {
    return now + (payload.exp - payload.iat) * 1000;
  }
  return null; // not a JWT (the admin token): it does not expire
}

/** The user an access token is for (`sub`), or null if it is no JWT. */
export function tokenSubject(accessToken) {
  const sub = claims(accessToken)?.sub;
  return typeof sub === "string" ? sub : null;
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}
