import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { ActorbaseError } from "../src/index.js";
import { BACKENDS, Server, client, signedIn } from "./server.js";

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for time step `step`. */
function totp(secret, step) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", key).update(counter).digest();
  const o = mac[19] & 15;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

for (const backend of BACKENDS) {
  describe(`auth (${backend})`, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    test("sign up, sign in, me, sign out, wrong password", async () => {
      const ab = await signedIn(server);
      assert.equal(ab.auth.user.email, ab.email);
      const seen = [];
      const other = client(server);
      other.auth.onChange((u) => seen.push(u?.email ?? null));
      const { user } = await other.auth.signIn({ email: ab.email, password: "correct horse battery" });
      assert.equal(user.id, ab.auth.user.id);
      assert.equal(user.role !== undefined, true); // /api/auth/me's full user
      const wrong = await other.auth.signIn({ email: ab.email, password: "wrong password!" }).catch((e) => e);
      assert.ok(wrong instanceof ActorbaseError);
      assert.equal(wrong.code, "INVALID_CREDENTIALS");
      assert.equal(wrong.status, 401);
      await other.auth.signOut();
      assert.equal(other.auth.user, null);
      assert.deepEqual(seen, [ab.email, null]);
      const after = await other.data("todos").list().catch((e) => e);
      assert.equal(after.code, "UNAUTHENTICATED");
      ab.close();
      other.close();
    });

    test("a 401 refreshes once for many requests, then they succeed", async () => {
      let refreshes = 0;
      const countingFetch = (url, init) => {
        if (String(url).endsWith("/api/auth/refresh")) refreshes += 1;
        return fetch(url, init);
      };
      const storage = (() => {
        let v = null;
        return { get: () => v, set: (x) => (v = x), clear: () => (v = null) };
      })();
      const ab = await signedIn(server, { fetch: countingFetch, tokenStorage: storage });
      await ab.data("notes").create({ id: "n1", text: "hi" });
      // The server no longer takes this access token (as after a key rotation).
      const session = storage.get();
      storage.set({ ...session, accessToken: `${session.accessToken}x` });
      const ab2 = client(server, { fetch: countingFetch, tokenStorage: storage });
      const rows = await Promise.all([1, 2, 3, 4].map(() => ab2.data("notes").get("n1")));
      assert.deepEqual(rows.map((r) => r.text), ["hi", "hi", "hi", "hi"]);
      assert.equal(refreshes, 1);
      assert.notEqual(storage.get().refreshToken, session.refreshToken);
      ab.close();
      ab2.close();
    });

    test("MFA: enroll, enable, sign in with a challenge, verify with a TOTP", async () => {
      const ab = await signedIn(server);
      const password = "correct horse battery";
      const { secret } = await ab.auth.mfa.enroll(password);
      const step = Math.floor(Date.now() / 30_000);
      const { recoveryCodes } = await ab.auth.mfa.enable({ code: totp(secret, step - 1), password });
      assert.equal(recoveryCodes.length, 10);
      const fresh = client(server);
      const first = await fresh.auth.signIn({ email: ab.email, password });
      assert.equal(first.mfaRequired, true);
      assert.equal(typeof first.challenge, "string");
      assert.equal(fresh.auth.user, null);
      const bad = await fresh.auth.verifyMfa({ challenge: first.challenge, code: "000000" }).catch((e) => e);
      assert.equal(bad.status, 401);
      const { user } = await fresh.auth.verifyMfa({ challenge: first.challenge, code: totp(secret, step) });
      assert.equal(user.email, ab.email);
      assert.equal(user.mfaEnabled, true);
      assert.equal((await fresh.data("x").list()).total, 0);
      ab.close();
      fresh.close();
    });

    test("sessions: list, revoke another, the revoked one is signed out", async () => {
      const a = await signedIn(server);
      const b = client(server);
      await b.auth.signIn({ email: a.email, password: "correct horse battery" });
      const sessions = await a.auth.sessions();
      assert.equal(sessions.length, 2);
      const other = sessions.find((s) => !s.current);
      await a.auth.revokeSession(other.id);
      assert.deepEqual((await a.auth.sessions()).map((s) => s.id), sessions.filter((s) => s.current).map((s) => s.id));
      const err = await b.auth.refresh().catch((e) => e);
      assert.equal(err.status, 401);
      assert.equal(b.auth.user, null);
      a.close();
      b.close();
    });
  });
}
