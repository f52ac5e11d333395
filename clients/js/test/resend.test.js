// A request refused with 401 is sent again, after the refresh, only as the user it was
// first sent as. If another user signed in on the same client between the 401 and the
// re-send (before the refresh, while it is on its way, or after it), the request fails
// with 401 UNAUTHENTICATED and is not performed as them; if the same user signed in
// again, it is sent again and succeeds as that user. A queued write of the first user
// waits for them. Real server, both backends; the interleaving is fixed by hooks here.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { ActorbaseError, memoryTokens } from "../src/index.js";
import { BACKENDS, Server, client } from "./server.js";

const PASSWORD = "correct horse battery";

let accounts = 0;

/** A new account; → {email, id}. */
async function account(server) {
  const ab = client(server);
  const email = `resend${process.pid}-${++accounts}-${Date.now()}@example.com`;
  const { user } = await ab.auth.signUp({ email, password: PASSWORD });
  await ab.auth.signOut();
  ab.close();
  return { email, id: user.id };
}

/** A token store holding a session of `who` whose access token the server refuses (its
 * signature spoilt: as after a key rotation) while its refresh token is good. */
async function refusedSession(server, who) {
  const storage = memoryTokens();
  const ab = client(server, { tokenStorage: storage });
  await ab.auth.signIn({ email: who.email, password: PASSWORD });
  ab.close(); // no sign-out: the session lives on
  const session = storage.get();
  assert.equal(session.user.id, who.id);
  storage.set({ ...session, accessToken: `${session.accessToken}x` });
  return storage;
}

/** The `userId` of every row of `entity`, as the admin sees them. */
async function owners(server, entity) {
  const { data } = await server.admin("GET", `/api/data/${entity}`);
  return data.map((r) => r.userId).sort();
}

/** A client signed in (from `storage`) whose fetch runs `hook.run()` once, between the
 * next 401 of a request to `/api/data` or `/api/mutate` and its re-send, at `when`:
 * - "before-refresh": the 401 came back, the client has not looked at it yet;
 * - "during-refresh": the refresh request is on its way (answered once the sign-in has
 *   stored its tokens; the rest of the sign-in waits for the refresh, as it would);
 * - "after-refresh": the refresh stored the new tokens. */
function hookedClient(server, storage, when, signIn) {
  const hook = { armed: true, signedIn: null };
  const fetchImpl = async (url, init) => {
    const path = new URL(url).pathname;
    if (hook.armed && when === "during-refresh" && path === "/api/auth/refresh") {
      hook.armed = false;
      const answer = await fetch(url, init);
      const stored = new Promise((resolve) => {
        const off = ab.auth.onToken(() => (off(), resolve()));
      });
      hook.signedIn = signIn(ab);
      await stored;
      return answer;
    }
    const response = await fetch(url, init);
    const data = path.startsWith("/api/data/") || path === "/api/mutate";
    if (hook.armed && when === "before-refresh" && data && response.status === 401) {
      hook.armed = false;
      hook.signedIn = signIn(ab);
      await hook.signedIn;
    }
    return response;
  };
  const ab = client(server, { tokenStorage: storage, fetch: fetchImpl });
  if (when === "after-refresh") {
    const refresh = ab.auth.refresh;
    ab.auth.refresh = async () => {
      ab.auth.refresh = refresh;
      await refresh.call(ab.auth);
      hook.armed = false;
      hook.signedIn = signIn(ab);
      await hook.signedIn;
    };
  }
  return { ab, hook };
}

const signInAs = (who) => (ab) => ab.auth.signIn({ email: who.email, password: PASSWORD });

for (const backend of BACKENDS) {
  describe(`401 re-send only as the same user (${backend})`, () => {
    const server = new Server(backend);
    before(() => server.start());
    after(() => server.destroy());

    for (const when of ["before-refresh", "during-refresh", "after-refresh"]) {
      test(`another user signed in ${when}: not sent again as them, 401 to the caller`, async () => {
        const [a, b] = [await account(server), await account(server)];
        const entity = `resend_${randomBytes(4).toString("hex")}`;
        const { ab, hook } = hookedClient(server, await refusedSession(server, a), when, signInAs(b));
        assert.equal(ab.auth.user.id, a.id);
        const error = await ab.data(entity).create({ by: "A" }).then(
          () => assert.fail("A's create succeeded"),
          (e) => e,
        );
        assert.ok(error instanceof ActorbaseError);
        assert.deepEqual([error.code, error.status], ["UNAUTHENTICATED", 401]);
        assert.equal(hook.armed, false, "the hook ran");
        await hook.signedIn;
        assert.deepEqual(await owners(server, entity), []); // not performed, as B or at all
        // B's sign-in stands and B writes as B.
        assert.equal(ab.auth.user.id, b.id);
        const created = await ab.data(entity).create({ by: "B" });
        assert.equal(created.userId, b.id);
        assert.deepEqual(await owners(server, entity), [b.id]);
        ab.close();
      });
    }

    // (While a refresh is on its way, a new sign-in's user is not known until the
    // refresh is over, so the client does not re-send then, even for the same user.)
    for (const when of ["before-refresh", "after-refresh"]) {
      test(`the same user signed in again ${when}: sent again, done as them`, async () => {
        const a = await account(server);
        const entity = `resend_${randomBytes(4).toString("hex")}`;
        const storage = await refusedSession(server, a);
        const refused = storage.get().accessToken;
        const { ab, hook } = hookedClient(server, storage, when, signInAs(a));
        const created = await ab.data(entity).create({ by: "A" });
        assert.equal(hook.armed, false, "the hook ran");
        assert.equal(created.userId, a.id);
        assert.deepEqual(await owners(server, entity), [a.id]); // once
        assert.notEqual(storage.get().accessToken, refused);
        assert.equal(ab.auth.user.id, a.id);
        ab.close();
      });
    }

    test("no one else signed in: refreshed, sent again, done as the same user", async () => {
      const a = await account(server);
      const entity = `resend_${randomBytes(4).toString("hex")}`;
      const ab = client(server, { tokenStorage: await refusedSession(server, a) });
      const created = await ab.data(entity).create({ by: "A" });
      assert.equal(created.userId, a.id);
      assert.deepEqual(await owners(server, entity), [a.id]);
      ab.close();
    });

    test("a queued write refused with 401 is neither sent as the next user nor dropped", async () => {
      const [a, b] = [await account(server), await account(server)];
      const entity = `resend_${randomBytes(4).toString("hex")}`;
      const { ab, hook } = hookedClient(server, await refusedSession(server, a), "before-refresh", signInAs(b));
      let settled = false;
      const write = ab.mutate([{ entity, id: "w1", op: "set", data: { by: "A" } }]);
      write.then(
        () => (settled = true),
        () => (settled = true),
      );
      await ab.outbox.flush();
      await hook.signedIn;
      await ab.outbox.flush();
      assert.equal(hook.armed, false, "the hook ran");
      assert.equal(ab.auth.user.id, b.id);
      assert.equal(ab.outbox.pending, 1, "held for A");
      assert.equal(settled, false);
      assert.deepEqual(await owners(server, entity), []);
      await ab.auth.signIn({ email: a.email, password: PASSWORD });
      await write;
      assert.deepEqual(await owners(server, entity), [a.id]);
      assert.equal(ab.outbox.pending, 0);
      ab.close();
    });
  });
}
