import { Emitter } from "./emitter.js";
import { timer } from "./backoff.js";
import { ActorbaseError } from "./errors.js";
import { localExpiry, memoryTokens } from "./tokens.js";

/** Fraction of an access token's life after which it is renewed ahead of expiry. */
const RENEW_AT = 0.75;

/** The session: sign-up/in/out, MFA, and one refresh in flight at a time, started ahead
 * of expiry by a timer and on demand after a 401. Listeners of `onToken` (the live
 * socket) hear every new access token, so they can re-`auth` without reconnecting. */
export class Auth {
  #http;
  #storage;
  #session = null;
  #refreshing = null;
  #timer = null;
  #changes = new Emitter();
  #tokens = new Emitter();

  /** `token`: a static bearer (the admin token) used as it is, never refreshed nor
   * stored; otherwise the session is the one `storage` holds, if any. */
  constructor(storage, token) {
    this.#storage = storage;
    if (token) {
      this.#storage = memoryTokens();
      this.#session = { accessToken: token, refreshToken: null, user: null, expiresAt: null };
      return;
    }
    const saved = storage.get();
    if (saved && typeof saved.then !== "function" && saved.refreshToken) {
      this.#session = saved;
      this.#schedule();
    }
  }

  /** Set once by the client (the Http needs the Auth too). */
  bind(http) {
    this.#http = http;
  }

  get user() {
    return this.#session?.user ?? null;
  }

  /** `fn(user)` on sign-in, sign-out and session loss; returns the remover. */
  onChange(fn) {
    return this.#changes.on(fn);
  }

  /** `fn(accessToken)` whenever a new one is issued (internal: the live socket). */
  onToken(fn) {
    return this.#tokens.on(fn);
  }

  async signUp({ email, password }) {
    const body = await this.#http.request("POST", "/api/auth/signup", {
      body: { email, password },
      auth: false,
    });
    this.#save(body, body.user);
    return { user: body.user };
  }

  async signIn({ email, password }) {
    const body = await this.#http.request("POST", "/api/auth/signin", {
      body: { email, password },
      auth: false,
    });
    if (body.mfaRequired) return { mfaRequired: true, challenge: body.mfaToken };
    return { user: await this.#signedIn(body) };
  }

  async verifyMfa({ challenge, code }) {
    const body = await this.#http.request("POST", "/api/auth/mfa/verify", {
      body: { mfaToken: challenge, code },
      auth: false,
    });
    return { user: await this.#signedIn(body) };
  }

  /** TOTP set-up for the signed-in user: enroll → {secret, otpauthUrl}; enable with a
   * first code → {mfaEnabled, recoveryCodes}; disable with a code. */
  mfa = {
    enroll: (password) => this.#http.request("POST", "/api/auth/mfa/enroll", { body: { password } }),
    enable: ({ code, password }) =>
      this.#http.request("POST", "/api/auth/mfa/enable", { body: { code, password } }),
    disable: ({ code, password }) =>
      this.#http.request("POST", "/api/auth/mfa/disable", { body: { code, password } }),
  };

  /** New tokens for the refresh token; concurrent callers share one request (the server
   * revokes the whole session when a rotated refresh token is presented twice). */
  refresh() {
    if (!this.#refreshing) {
      this.#refreshing = this.#doRefresh().finally(() => {
        this.#refreshing = null;
      });
    }
    return this.#refreshing;
  }

  async #doRefresh() {
    const session = this.#session;
    if (!session?.refreshToken) {
      const message = session ? "A static token is not refreshed" : "Not signed in";
      throw new ActorbaseError({ code: "UNAUTHENTICATED", message, status: 401 });
    }
    let body;
    try {
      body = await this.#http.request("POST", "/api/auth/refresh", {
        body: { refreshToken: session.refreshToken },
        auth: false,
      });
    } catch (error) {
      if (error.status === 401 && this.#session === session) this.#clear();
      throw error;
    }
    if (this.#session !== session) return; // signed out (or in anew) meanwhile
    this.#save(body, session.user);
  }

  /** After a 401 for `token`, sent as `userId`: refresh unless another caller already
   * did. True if the request is worth retrying with the (new) current token, which it
   * only is for the same user (when one was known): whoever signed in since must not
   * inherit it. */
  async refreshAfter401(token, userId) {
    if (!this.#session?.refreshToken) return false;
    if (this.#session.accessToken === token) {
      try {
        await this.refresh();
      } catch {
        return false;
      }
    }
    if (!this.#session) return false;
    return userId === null || (this.#session.user?.id ?? null) === userId;
  }

  /** The access token to send now, renewed first if it is (nearly) expired. */
  async accessToken() {
    if (this.#refreshing) await this.#refreshing.catch(() => {});
    const session = this.#session;
    if (!session) return null;
    if (session.expiresAt && Date.now() > session.expiresAt - 2000) {
      try {
        await this.refresh();
      } catch (error) {
        if (error.status !== 0) return null; // the session is gone
      }
    }
    return this.#session?.accessToken ?? null;
  }

  async signOut() {
    if (!this.#session) return;
    try {
      await this.#http.request("POST", "/api/auth/signout");
    } catch {
      // signed out locally regardless: the session ends with its refresh token
    }
    this.#clear();
  }

  async sessions() {
    return (await this.#http.request("GET", "/api/auth/sessions")).sessions;
  }

  async revokeSession(id) {
    await this.#http.request("DELETE", `/api/auth/sessions/${encodeURIComponent(id)}`);
  }

  async me() {
    return this.#http.request("GET", "/api/auth/me");
  }

  async #signedIn(tokens) {
    this.#save(tokens, null, false);
    const user = await this.me();
    this.#session = { ...this.#session, user };
    this.#storage.set(this.#session);
    this.#changes.emit(user);
    return user;
  }

  #save(tokens, user, announce = true) {
    const wasUser = this.#session?.user?.id;
    this.#session = {
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      user,
      expiresAt: localExpiry(tokens.accessToken),
    };
    this.#storage.set(this.#session);
    this.#schedule();
    this.#tokens.emit(tokens.accessToken);
    if (announce && user?.id !== wasUser) this.#changes.emit(user);
  }

  #clear() {
    this.#session = null;
    clearTimeout(this.#timer);
    this.#storage.clear();
    this.#changes.emit(null);
  }

  #schedule() {
    clearTimeout(this.#timer);
    const { expiresAt, accessToken } = this.#session;
    const lifetime = localExpiry(accessToken, 0);
    if (!expiresAt || lifetime === null) return;
    const renewAt = expiresAt - lifetime * (1 - RENEW_AT);
    this.#timer = timer(() => this.refresh().catch(() => {}), Math.max(0, renewAt - Date.now()));
  }

  close() {
    clearTimeout(this.#timer);
  }
}
