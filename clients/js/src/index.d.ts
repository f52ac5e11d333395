// Types for @actorbase/client (hand-written; the sources are plain ES modules).

export type Row = { id: string; createdAt?: number; updatedAt?: number; userId?: string | null; [field: string]: unknown };

export type Where = { [pathOrOperator: string]: unknown };
export type Order = { [path: string]: "asc" | "desc" };

/** One entity of a query: `$`-keys shape it, other keys follow links. */
export interface EntityQuery {
  $where?: Where;
  $order?: Order;
  $limit?: number;
  $offset?: number;
  $after?: string;
  $fields?: string[];
  [link: string]: unknown;
}
export type Query = { [entity: string]: EntityQuery };
export type QueryResult = { [entity: string]: Row[] };

export type MutationOp =
  | { entity: string; id: string; op: "set"; data: Record<string, unknown> }
  | { entity: string; id: string; op: "merge"; data: Record<string, unknown> }
  | { entity: string; id: string; op: "delete" };

export interface MutationResult {
  tx: number;
  /** Present when the mutation went over REST (`/api/mutate`). */
  results?: { op: string; id: string; status: string }[];
  /** The server answered a retry of an already committed idempotency key. */
  replayed?: boolean;
}

export interface Diff {
  entity?: string;
  added?: Row[];
  updated?: Row[];
  removed?: string[];
  tx?: number;
}

/** Every failed call rejects with one; `code` NETWORK_ERROR (status 0) when the server
 * could not be reached. */
export class ActorbaseError extends Error {
  code: string;
  status: number;
  details?: unknown;
  retryAfter?: number;
  constructor(init: { code: string; message: string; status: number; details?: unknown; retryAfter?: number });
  static fromWire(error: unknown, status?: number): ActorbaseError;
  static network(message: string): ActorbaseError;
}

export interface Session {
  accessToken: string;
  refreshToken: string;
  user: User | null;
  expiresAt: number | null;
}
export interface TokenStorage {
  get(): Session | null;
  set(session: Session): void;
  clear(): void;
}
export function memoryTokens(): TokenStorage;
export function localStorageTokens(key?: string): TokenStorage;

export interface OutboxEntry {
  id: string;
  ops: MutationOp[];
  seq: number;
  /** Who made it: it is sent only while they are signed in. */
  userId: string | null;
}
export interface OutboxStore {
  load(): OutboxEntry[] | Promise<OutboxEntry[]>;
  put(entry: OutboxEntry): void | Promise<void>;
  delete(id: string): void | Promise<void>;
}
export function memoryOutbox(): OutboxStore;
export function fileOutbox(path: string): OutboxStore;
export function indexedDbOutbox(name?: string): OutboxStore;

export interface User {
  id: string;
  email: string;
  role?: string;
  claims?: Record<string, unknown>;
  mfaEnabled?: boolean;
  createdAt: string;
}

export interface ClientOptions {
  url: string;
  /** A static bearer token (e.g. the admin token): sent on REST and in the WebSocket's
   * `auth`, never refreshed nor stored; `tokenStorage` is then not used. */
  token?: string;
  tokenStorage?: TokenStorage;
  outbox?: OutboxStore;
  transport?: "ws" | "sse";
  /** A WebSocket class (Node 20 has none built in: pass the `ws` package's). */
  WebSocket?: unknown;
  fetch?: typeof fetch;
}

export interface Auth {
  readonly user: User | null;
  signUp(credentials: { email: string; password: string }): Promise<{ user: User }>;
  signIn(credentials: { email: string; password: string }): Promise<{ user: User } | { mfaRequired: true; challenge: string }>;
  verifyMfa(args: { challenge: string; code: string }): Promise<{ user: User }>;
  refresh(): Promise<void>;
  signOut(): Promise<void>;
  sessions(): Promise<{ id: string; device: string; ip: string; lastUsedAt: string; current: boolean }[]>;
  revokeSession(id: string): Promise<void>;
  me(): Promise<User>;
  /** The access token to send now (renewed first if nearly expired); null if signed out. */
  accessToken(): Promise<string | null>;
  onChange(fn: (user: User | null) => void): () => void;
  mfa: {
    enroll(password: string): Promise<{ secret: string; otpauthUrl: string }>;
    enable(args: { code: string; password: string }): Promise<{ mfaEnabled: true; recoveryCodes: string[] }>;
    disable(args: { code: string; password: string }): Promise<{ mfaEnabled: false }>;
  };
}

export interface ListPage<T = Row> {
  data: T[];
  total: number;
  hasMore: boolean;
  /** Pass back as `cursor` for the next page. */
  cursor?: string;
}

export interface DataApi<T extends Row = Row> {
  get(id: string): Promise<T>;
  list(options?: { where?: Where; order?: Order | string; limit?: number; offset?: number; cursor?: string }): Promise<ListPage<T>>;
  create(doc: Partial<T> & Record<string, unknown>): Promise<T>;
  update(id: string, patch: Record<string, unknown>): Promise<T>;
  remove(id: string): Promise<void>;
}

export interface UploadProgress {
  loaded: number;
  total: number;
}
export interface StorageApi {
  upload(
    path: string,
    data: Blob | ArrayBuffer | ArrayBufferView | string,
    options?: { onProgress?: (p: UploadProgress) => void; contentType?: string },
  ): Promise<{ path: string; url: string; size: number; contentType: string }>;
  signedUrl(path: string, options?: { expiresIn?: number }): Promise<{ url: string; expiresAt: string }>;
  list(options?: { prefix?: string; limit?: number; cursor?: string }): Promise<{
    files: { path: string; size: number; contentType: string; updatedAt: string }[];
    hasMore: boolean;
    cursor?: string;
  }>;
  remove(path: string): Promise<void>;
}

export interface LiveQuery<R extends QueryResult = QueryResult> extends AsyncIterable<R> {
  readonly id: string;
  readonly query: Query;
  /** The visible result: the server's as of `tx`, with pending writes laid over it. */
  readonly result: R | null;
  /** The last tx applied (from q-init / q-diff); resumes start from it. */
  readonly tx: number | null;
  readonly error: ActorbaseError | null;
  readonly closed: boolean;
  /** q-init and q-diff frames applied (a resume within the tx log adds a q-diff only). */
  readonly inits: number;
  readonly diffs: number;
  subscribe(fn: (result: R) => void, onError?: (error: ActorbaseError) => void): () => void;
  close(): void;
}

export type ConnectionStateName = "connecting" | "open" | "offline" | "closed";
export interface Connection {
  readonly state: ConnectionStateName;
  onChange(fn: (state: ConnectionStateName) => void): () => void;
}

export interface Peer<S = Record<string, unknown>> {
  id: string;
  userId: string | null;
  data: S;
}
export interface PresenceRoom<S = Record<string, unknown>> {
  readonly room: string;
  readonly peers: Peer<S>[];
  /** This socket's connection id (auth-ok's `connectionId`); null while disconnected. */
  readonly me: string | null;
  enter(state?: S): Promise<Peer<S>[]>;
  update(state: S): Promise<void>;
  leave(): Promise<void>;
  onChange(fn: (peers: Peer<S>[]) => void): () => void;
  /** The room's peers now, over REST (GET /api/presence/{room}), without entering it. */
  list(): Promise<Peer<S>[]>;
  close(): void;
}

export interface Client {
  readonly url: string;
  readonly auth: Auth;
  readonly connection: Connection;
  readonly storage: StorageApi;
  readonly functions: { call<T = unknown>(name: string, args?: Record<string, unknown>): Promise<{ result: T; tx: number }> };
  readonly outbox: {
    /** Queued mutations (those of a persisted outbox count once it has been read). */
    readonly pending: number;
    /** Reads the outbox store if not yet done, then sends what is queued; resolves when
     * the queue is empty or the server is out of reach (a retry is then scheduled). */
    flush(): Promise<void>;
    /** `fn(pending)` whenever the number of queued mutations changes. */
    onChange(fn: (pending: number) => void): () => void;
  };
  data<T extends Row = Row>(entity: string): DataApi<T>;
  /** Any endpoint (e.g. /api/admin/*): `body` sent as JSON, the reply's JSON returned;
   * `path` carries its query string. Rejects with ActorbaseError. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  query<R extends QueryResult = QueryResult>(query: Query): Promise<R & { tx: number; $cursors?: Record<string, string> }>;
  mutate(ops: MutationOp[], options?: { id?: string }): Promise<MutationResult>;
  live<R extends QueryResult = QueryResult>(query: Query): LiveQuery<R>;
  presence<S = Record<string, unknown>>(room: string): PresenceRoom<S>;
  /** Drop the live connection as a network failure would (it reconnects and resumes). */
  reconnect(): void;
  close(): void;
}

export function createClient(options: ClientOptions): Client;

/** Apply one q-diff to rows sorted by `order` (a `$order` object or a comparator);
 * pure, O(n + k log k). */
export function applyDiff(rows: Row[], diff: Diff, order?: Order | ((a: Row, b: Row) => number)): Row[];
/** The server's row order for a `$order` (then by id). */
export function comparator(order?: Order): (a: Row, b: Row) => number;
export function encodePath(path: string): string;
/** A random id usable as an idempotency key. */
export function newId(): string;
