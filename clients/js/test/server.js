// A real actorbase server per test file: `python3 -m actorbase serve` from the repository
// root (so this worktree's code runs), on a free port, a temp DATA_DIR, and SQLite or,
// when TEST_DATABASE_URL is set, a fresh PostgreSQL database of its own.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { createClient, memoryOutbox } from "../src/index.js";

export const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
export const ADMIN_TOKEN = `test-admin-token-${"x".repeat(32)}`;

/** The backends to run on: SQLite always, PostgreSQL when TEST_DATABASE_URL is set. */
export const BACKENDS = process.env.TEST_DATABASE_URL ? ["sqlite", "postgres"] : ["sqlite"];

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
    srv.on("error", reject);
  });
}

function psql(url, sql) {
  execFileSync("psql", [url, "-qAtc", sql], { stdio: "pipe" });
}

export class Server {
  constructor(backend, env = {}) {
    this.backend = backend;
    this.extraEnv = env;
    this.dataDir = mkdtempSync(join(tmpdir(), "abjs-"));
    this.proc = null;
  }

  async start() {
    if (!this.port) {
      this.port = await freePort();
      this.url = `http://127.0.0.1:${this.port}`;
      if (this.backend === "postgres") {
        const base = new URL(process.env.TEST_DATABASE_URL);
        this.dbName = `ab_jstest_${randomBytes(6).toString("hex")}`;
        psql(base.href, `CREATE DATABASE "${this.dbName}"`);
        base.pathname = `/${this.dbName}`;
        this.databaseUrl = base.href;
      } else {
        this.databaseUrl = `sqlite:///${join(this.dataDir, "actorbase.db")}`;
      }
    }
    const env = {
      ...process.env,
      PORT: String(this.port),
      HOST: "127.0.0.1",
      DATA_DIR: this.dataDir,
      DATABASE_URL: this.databaseUrl,
      ADMIN_TOKEN,
      RATE_LIMIT: "100000",
      AUTH_RATE_LIMIT: "100000",
      AUTH_EMAIL_RATE_LIMIT: "100000",
      MFA_RATE_LIMIT: "100000",
      UPLOAD_RATE_LIMIT: "100000",
      WS_MESSAGE_RATE: "10000",
      BCRYPT_ROUNDS: "4",
      LOG_LEVEL: "warning",
      SHUTDOWN_TIMEOUT: "2",
      ...this.extraEnv,
    };
    const log = openSync(join(this.dataDir, "server.log"), "a");
    this.proc = spawn("python3", ["-m", "actorbase", "serve"], {
      cwd: ROOT,
      env,
      stdio: ["ignore", log, log],
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`server exited:\n${this.log()}`);
      try {
        const r = await fetch(`${this.url}/api/admin/health`);
        if (r.status === 200) return this;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`server did not start:\n${this.log()}`);
  }

  /** SIGTERM and wait for the exit. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const timeout = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timeout);
  }

  async destroy() {
    await this.stop();
    if (this.dbName) {
      psql(process.env.TEST_DATABASE_URL, `DROP DATABASE IF EXISTS "${this.dbName}" WITH (FORCE)`);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  log() {
    try {
      return readFileSync(join(this.dataDir, "server.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** The admin token's view of the server, for checks outside the client under test. */
  async admin(method, path, body) {
    const r = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return r.status === 204 ? null : r.json();
  }
}

/** A WebSocket class that counts the sockets made and, while `gate.open` is false,
 * connects nowhere (the client is "offline" though the server runs). */
export function gatedWebSocket() {
  const gate = { open: true, made: 0 };
  gate.WebSocket = class extends WebSocket {
    constructor(url, ...rest) {
      gate.made += 1;
      super(gate.open ? url : "ws://127.0.0.1:9/ws", ...rest);
    }
  };
  return gate;
}

export function client(server, options = {}) {
  return createClient({ url: server.url, WebSocket, outbox: memoryOutbox(), ...options });
}

let users = 0;

/** A client signed in as a fresh user. */
export async function signedIn(server, options = {}) {
  const ab = client(server, options);
  const email = `u${process.pid}-${++users}-${Date.now()}@example.com`;
  await ab.auth.signUp({ email, password: "correct horse battery" });
  ab.email = email;
  return ab;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wait until `predicate()` is true (polling), or fail after `ms`. */
export async function until(predicate, ms = 20_000, what = "condition") {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}
