// Shared test parts, all real and on loopback: the OAuth server (oidc-provider), the
// revocation origin (snapshots built and signed by the real `revguard` CLI), an echoing
// backend, and the worker itself in workerd (Miniflare).
import { execFileSync, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import Provider from "oidc-provider";

export const workerRoot = fileURLToPath(new URL("..", import.meta.url));
export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The `revguard` CLI: $REVGUARD_BIN, else the debug build in the cargo target directory. */
export function revguardBin() {
  const bin =
    process.env.REVGUARD_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target"), "debug", "revguard");
  if (!existsSync(bin)) throw new Error(`no revguard CLI at ${bin}: run cargo build --bin revguard`);
  return bin;
}

/** A loopback HTTP server on a free port, whose handler can be swapped, and which can be
 * stopped (connections refused) and started again on the same port. */
export class Loopback {
  constructor(handler) {
    this.handler = handler;
    this.port = 0;
  }

  async start() {
    this.server = createServer((req, res) => this.handler(req, res));
    await new Promise((resolve) => this.server.listen(this.port, "127.0.0.1", resolve));
    this.port = this.server.address().port;
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Reads a request body. */
function body(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

/** The backend: answers every request with what it received, as JSON. */
export async function startBackend() {
  return new Loopback(async (req, res) => {
    const received = (await body(req)).toString();
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: received }));
  }).start();
}

/** The revocation origin: keys from `revguard keygen`, snapshots and deltas from `revguard
 * snapshot build` / `snapshot delta`, served as static files with ETags and conditional GET.
 * `hang` makes it accept requests and never answer. */
export class Origin {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "revguard-origin-"));
    this.bin = revguardBin();
    execFileSync(this.bin, ["keygen", "--out", join(this.dir, "origin")], { stdio: "pipe" });
    this.publicKey = readFileSync(join(this.dir, "origin.pub"), "utf8").trim();
    this.generation = 0;
    this.base = []; // the list the current full snapshot was built from
    this.revoked = []; // every revocation so far
    this.files = new Map(); // path -> {bytes, etag}
    this.requests = 0;
    this.hang = false;
    this.loopback = new Loopback((req, res) => this.serve(req, res));
  }

  serve(req, res) {
    this.requests++;
    if (this.hang) return; // never answered
    const file = this.files.get(new URL(req.url, "http://origin").pathname);
    if (!file) {
      res.statusCode = 404;
      return res.end();
    }
    res.setHeader("etag", file.etag);
    if (req.headers["if-none-match"] === file.etag) {
      res.statusCode = 304;
      return res.end();
    }
    res.setHeader("content-type", "application/octet-stream");
    res.end(file.bytes);
  }

  async start() {
    await this.loopback.start();
    return this;
  }

  get url() {
    return this.loopback.url;
  }

  stop() {
    return this.loopback.stop();
  }

  #list(name, entries) {
    const path = join(this.dir, name);
    writeFileSync(path, entries.map((e) => JSON.stringify(e) + "\n").join(""));
    return path;
  }

  #publish(path, file) {
    this.files.set(path, { bytes: readFileSync(file), etag: `"g${this.generation}"` });
  }

  /** Builds and signs a full snapshot of every revocation so far (the delta is dropped). */
  publishSnapshot({ maxAge = 300 } = {}) {
    this.generation++;
    this.base = [...this.revoked];
    const out = join(this.dir, "current.snap");
    execFileSync(this.bin, [
      "snapshot", "build", "--revocations", this.#list("base.jsonl", this.base),
      "--generation", String(this.generation), "--key", join(this.dir, "origin.key"),
      "--out", out, "--max-age", String(maxAge),
    ], { stdio: "pipe" });
    this.#publish("/current.snap", out);
    this.files.delete("/current.delta");
  }

  /** Adds `entries` (e.g. {jti}) and publishes them as a signed delta on the current snapshot. */
  revokeByDelta(...entries) {
    this.revoked.push(...entries);
    this.generation++;
    const out = join(this.dir, "current.delta");
    execFileSync(this.bin, [
      "snapshot", "delta", "--base", join(this.dir, "current.snap"),
      "--from", this.#list("base.jsonl", this.base), "--to", this.#list("now.jsonl", this.revoked),
      "--generation", String(this.generation), "--key", join(this.dir, "origin.key"), "--out", out,
    ], { stdio: "pipe" });
    this.#publish("/current.delta", out);
  }

  /** Adds `entries` and publishes a new full snapshot. */
  revokeBySnapshot(...entries) {
    this.revoked.push(...entries);
    this.publishSnapshot();
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The real origin service (`revguard origin serve`: SQLite store, signed deltas, held GETs,
 * fleet view) as a child process on a free loopback port, with its own key and API token. */
export class OriginService {
  constructor(config = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "revguard-origin-service-"));
    this.bin = revguardBin();
    execFileSync(this.bin, ["keygen", "--out", join(this.dir, "origin")], { stdio: "pipe" });
    this.publicKey = readFileSync(join(this.dir, "origin.pub"), "utf8").trim();
    const printed = execFileSync(this.bin, ["origin", "token", "--name", "worker-tests"], {
      stdio: ["ignore", "pipe", "pipe"],
    }).toString();
    this.token = /^token: (.+)$/m.exec(printed)[1];
    const entry = JSON.parse(/^api_tokens entry: (.+)$/m.exec(printed)[1]);
    this.configPath = join(this.dir, "origin.json");
    writeFileSync(this.configPath, JSON.stringify({
      listen: "127.0.0.1:0", database: join(this.dir, "origin.db"),
      signing_key_file: join(this.dir, "origin.key"), api_tokens: [entry], ...config,
    }));
  }

  /** Starts the process; resolves once it prints the address it listens on. */
  start() {
    this.child = spawn(this.bin, ["origin", "serve", "--config", this.configPath], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    return new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("the origin did not start within 10 s")), 10_000);
      this.child.once("exit", (code) => reject(new Error(`the origin exited (${code})`)));
      this.child.stdout.on("data", (chunk) => {
        out += chunk;
        const m = /revguard origin listening on (http:\/\/\S+)/.exec(out);
        if (m && !this.url) {
          this.url = m[1];
          clearTimeout(timer);
          resolve(this);
        }
      });
    });
  }

  async #api(method, path, body) {
    const response = await fetch(new URL(path, this.url), {
      method,
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** POST /v1/revocations: answered after the commit is on disk. */
  revoke(body) {
    return this.#api("POST", "/v1/revocations", body);
  }

  /** GET /v1/fleet: which node holds which generation. */
  fleet() {
    return this.#api("GET", "/v1/fleet");
  }

  /** GET /v1/revocations with `query` (e.g. {kind: "sid", value}): the active revocations. */
  async revocations(query = {}) {
    const search = new URLSearchParams({ limit: "1000", ...query }).toString();
    return (await this.#api("GET", `/v1/revocations?${search}`)).revocations;
  }

  /** The generation it serves now (GET /healthz). */
  async generation() {
    const response = await fetch(new URL("/healthz", this.url));
    return (await response.json()).generation;
  }

  /** POSTs `body` to `path` as `contentType` (no API token unless given in `headers`):
   * {status, headers, text, json}. For the identity-provider feeds. */
  async post(path, body, contentType, headers = {}) {
    const response = await fetch(new URL(path, this.url), {
      method: "POST",
      headers: { "content-type": contentType, ...headers },
      body,
    });
    const text = await response.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function signingKey() {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), alg: "ES256", use: "sig" };
}

const APP = { id: "app", secret: "app-secret-0123456789abcdef0123456789" };
const GUARD = { id: "revguard", secret: "revguard-secret-0123456789abcdef0123" };

/** The OAuth server: panva's oidc-provider with client credentials, RFC 9068 JWT access
 * tokens (resource `urn:api`) and opaque ones (no resource), introspection and revocation.
 * `mode`: "up", or "hang" (introspection requests are accepted and never answered). Counts
 * the introspection calls it receives. */
export class Idp {
  constructor() {
    this.keys = [signingKey()];
    this.introspections = 0;
    this.mode = "up";
    // Interactive sign-in (authorization code flow) and back-channel logout: off until
    // enableLogin(); then client id -> its backchannel_logout_uri.
    this.logoutUris = null;
    // true: requests for the key set (/jwks) get their connection reset (the IdP's JWKS down).
    this.jwksDown = false;
    this.backchannel = []; // {clientId, sid, ok, error} per back-channel logout call it made
    this.loopback = new Loopback((req, res) => this.serve(req, res));
  }

  async start() {
    await this.loopback.start();
    this.provider = this.#provider();
    return this;
  }

  get url() {
    return this.loopback.url;
  }

  stop() {
    return this.loopback.stop();
  }

  serve(req, res) {
    if (this.jwksDown && req.url.startsWith("/jwks")) return req.socket.destroy();
    if (req.url.startsWith("/token/introspection")) {
      this.introspections++;
      if (this.mode === "hang") return;
    }
    this.provider.callback()(req, res);
  }

  #provider() {
    const login = this.logoutUris !== null;
    const webClients = Object.entries(this.logoutUris ?? {}).map(([id, uri]) => ({
      client_id: id,
      client_secret: `${id}-secret-0123456789abcdef0123456789`,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: [WEB_REDIRECT],
      scope: "openid orders:read",
      backchannel_logout_uri: uri,
      backchannel_logout_session_required: true,
    }));
    const provider = new Provider(this.url, {
      clients: [APP, GUARD].map((c) => ({
        client_id: c.id,
        client_secret: c.secret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: "orders:read",
      })).concat(webClients),
      jwks: { keys: this.keys },
      clientDefaults: { id_token_signed_response_alg: "ES256" },
      scopes: ["openid", "orders:read"],
      // Its outgoing requests (back-channel logout) refuse special-use addresses, loopback
      // included (lib/helpers/fetch_request.js: an SSRF guard passed as `dispatcher`); every
      // party of these tests is on loopback, so the guard is left out here.
      fetch: (url, { dispatcher: _guard, ...options }) => globalThis.fetch(url, options),
      // The session id in JWT access tokens (not there by default), so that a back-channel
      // logout's `sid` revocation matches the tokens of that session.
      formats: {
        customizers: {
          jwt: (_ctx, token, jwt) => {
            if (token.sid) jwt.payload.sid = token.sid;
          },
        },
      },
      features: {
        // The development login and consent pages: signIn() drives them like a browser.
        devInteractions: { enabled: login },
        backchannelLogout: { enabled: login },
        rpInitiatedLogout: { enabled: true },
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        revocation: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined,
          useGrantedResource: () => true,
          // urn:api gets RFC 9068 JWTs; urn:opaque-api opaque tokens whose introspection answer
          // names the audience (revguard requires it for opaque tokens).
          getResourceServerInfo: (_ctx, resource) => ({
            scope: "orders:read",
            audience: "api",
            accessTokenTTL: 3600,
            accessTokenFormat: resource === "urn:opaque-api" ? "opaque" : "jwt",
            ...(resource === "urn:opaque-api" ? {} : { jwt: { sign: { alg: "ES256" } } }),
          }),
        },
      },
    });
    provider.on("server_error", (_ctx, error) => console.error("oidc-provider:", error));
    provider.on("backchannel.success", (_ctx, client, _sub, sid) =>
      this.backchannel.push({ clientId: client.clientId, sid, ok: true }));
    provider.on("backchannel.error", (_ctx, error, client, _sub, sid) =>
      this.backchannel.push({ clientId: client.clientId, sid, ok: false, error: error.message }));
    return provider;
  }

  /** Interactive sign-in and OpenID Connect Back-Channel Logout: `logoutUris` maps a web
   * client id to its `backchannel_logout_uri` (session required). Rebuilds the provider
   * (sessions so far are lost): call it before signIn(). */
  enableLogin(logoutUris) {
    this.logoutUris = logoutUris;
    this.provider = this.#provider();
  }

  /** Signs `user` in at the provider like a browser (authorization code flow with PKCE, the
   * devInteractions login and consent pages, cookies) for web client `clientId`, and returns
   * the session: `{accessToken, sid, sub, clientId, browser}`. The access token is an RFC 9068
   * JWT for resource `urn:api` that carries the session's `sid`. */
  async signIn({ user = "user-1", clientId = Object.keys(this.logoutUris ?? {})[0] } = {}) {
    if (!clientId) throw new Error("signIn: call enableLogin() first");
    const browser = new Browser();
    const verifier = randomBytes(32).toString("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const auth = new URL("/auth", this.url);
    auth.search = new URLSearchParams({
      client_id: clientId, response_type: "code", scope: "openid orders:read",
      redirect_uri: WEB_REDIRECT, resource: "urn:api", state: randomUUID(),
      code_challenge: challenge, code_challenge_method: "S256",
    }).toString();
    let response = await browser.go(auth);
    let code;
    for (let step = 0; step < 12 && !code; step++) {
      const location = response.headers.get("location");
      if (!location) {
        throw new Error(`signIn: expected a redirect, got ${response.status}: ${(await response.text()).slice(0, 300)}`);
      }
      const next = new URL(location, this.url);
      if (next.href.startsWith(WEB_REDIRECT)) {
        if (next.searchParams.get("error")) throw new Error(`signIn: ${next.search}`);
        code = next.searchParams.get("code");
      } else if (next.pathname.startsWith("/interaction/")) {
        const page = await (await browser.go(next)).text();
        const prompt = /name="prompt" value="(\w+)"/.exec(page)?.[1];
        const form = prompt === "login" ? { prompt, login: user, password: "any" } : { prompt };
        response = await browser.go(next, { form });
      } else {
        response = await browser.go(next);
      }
    }
    if (!code) throw new Error("signIn: no authorization code");
    const secret = `${clientId}-secret-0123456789abcdef0123456789`;
    const tokenResponse = await fetch(`${this.url}/token`, {
      method: "POST",
      headers: { authorization: basic({ id: clientId, secret }), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", code, redirect_uri: WEB_REDIRECT,
        code_verifier: verifier, resource: "urn:api",
      }),
    });
    const tokens = await tokenResponse.json();
    if (!tokenResponse.ok) throw new Error(`signIn: token endpoint: ${JSON.stringify(tokens)}`);
    const claims = claimsOf(tokens.access_token);
    if (!claims.sid) throw new Error(`signIn: the access token has no sid: ${JSON.stringify(claims)}`);
    return { accessToken: tokens.access_token, idToken: tokens.id_token, sid: claims.sid, sub: claims.sub, clientId, browser };
  }

  /** Signs the session out at the provider (RP-initiated logout: the end_session page and its
   * confirmation, with the session's cookies). The provider makes its back-channel logout
   * calls before it answers; returns the calls it made for this session's sid. */
  async signOut(session) {
    const { browser, clientId } = session;
    const end = new URL("/session/end", this.url);
    end.search = new URLSearchParams({ client_id: clientId }).toString();
    const page = await (await browser.go(end)).text();
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)?.[1];
    if (!xsrf) throw new Error(`signOut: no logout form: ${page.slice(0, 300)}`);
    const confirmed = await browser.go(new URL("/session/end/confirm", this.url), { form: { xsrf, logout: "yes" } });
    if (confirmed.status >= 400) throw new Error(`signOut: ${confirmed.status} ${await confirmed.text()}`);
    return this.backchannel.filter((call) => call.sid === session.sid);
  }

  /** A new signing key first (the provider signs with it), the old ones still published;
   * `retire` drops every old key. Takes effect without restarting the server. */
  rotate({ retire = false } = {}) {
    this.keys = retire ? this.keys.slice(0, 1) : [signingKey(), ...this.keys];
    this.provider = this.#provider();
  }

  async #token(params) {
    const response = await fetch(`${this.url}/token`, {
      method: "POST",
      headers: { authorization: basic(APP), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "orders:read", ...params }),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`token endpoint: ${JSON.stringify(json)}`);
    return json.access_token;
  }

  /** An RFC 9068 JWT access token (`typ: at+jwt`, ES256, `aud: api`). */
  issueJwt() {
    return this.#token({ resource: "urn:api" });
  }

  /** An opaque access token (only introspection can tell what it is). */
  issueOpaque() {
    return this.#token({ resource: "urn:opaque-api" });
  }

  /** RFC 7009 revocation by the owning client. */
  async revoke(token) {
    const response = await fetch(`${this.url}/token/revocation`, {
      method: "POST",
      headers: { authorization: basic(APP), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, token_type_hint: "access_token" }),
    });
    if (!response.ok) throw new Error(`revocation endpoint: ${response.status}`);
  }

  /** The revguard configuration pieces that point at this server. */
  get guardClient() {
    return { client_id: GUARD.id, client_secret: GUARD.secret };
  }
}

/** Where the web clients' authorization codes go (never fetched: signIn() reads the code
 * from the redirect). */
const WEB_REDIRECT = "https://app.example/callback";

/** A minimal browser: follows nothing by itself, keeps cookies by name (paths ignored: the
 * provider's cookie names are distinct), and posts forms. */
class Browser {
  constructor() {
    this.jar = new Map();
  }

  async go(url, { form } = {}) {
    const headers = {};
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join("; ");
    if (form) headers["content-type"] = "application/x-www-form-urlencoded";
    const response = await fetch(url, {
      method: form ? "POST" : "GET",
      redirect: "manual",
      headers,
      body: form ? new URLSearchParams(form) : undefined,
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expires = attributes.map((a) => a.trim()).find((a) => /^expires=/i.test(a));
      const gone = value === "" || (expires && new Date(expires.slice(8)) <= new Date());
      if (gone) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return response;
  }
}

function basic({ id, secret }) {
  return "Basic " + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64");
}

/** The claims of a JWT (test side only; the worker verifies). */
export function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
}

/** A revguard configuration for `idp` and `origin`, with `overrides` merged per section
 * (`top`: top-level fields such as routes). */
export function guardConfig(idp, origin, overrides = {}) {
  const config = {
    issuers: [{
      issuer: idp.url,
      audiences: ["api"],
      algorithms: ["ES256"],
      required_type: "at+jwt",
      jwks_upstream: {
        upstream: "idp", path: "/jwks", refresh_interval_secs: 300, unknown_kid_cooldown_secs: 1,
        timeout_ms: 1000, ...overrides.jwks_upstream,
      },
    }],
    opaque_tokens: "introspect",
    forward_claims: [
      { claim: "sub", header: "x-auth-subject" },
      { claim: "scope", header: "x-auth-scope" },
      { claim: "client_id", header: "x-auth-client" },
    ],
    revocation: {
      upstream: "origin", path: "/current.snap", delta_path: "/current.delta",
      refresh_interval_secs: 1, max_staleness_secs: 60, timeout_ms: 500,
      public_keys: [origin.publicKey], ...overrides.revocation,
    },
    introspection: {
      upstream: "idp", path: "/token/introspection", ...idp.guardClient,
      timeout_ms: 500, cache_ttl_secs: 2, ...overrides.introspection,
    },
    failure_modes: { ...overrides.failure_modes },
    ...overrides.top,
  };
  return config;
}

/** The Cloudflare entry (worker.js) in workerd, configured through its environment. */
export async function startWorker({ config, idp, origin, backend }) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: "worker.js",
    modulesRoot: workerRoot,
    rootPath: workerRoot,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-01-01",
    cf: false,
    bindings: {
      REVGUARD_CONFIG: JSON.stringify(config),
      REVGUARD_UPSTREAMS: JSON.stringify({ idp: idp.url, origin: origin.url }),
      REVGUARD_BACKEND: backend.url,
    },
  });
  await mf.ready;
  return {
    mf,
    /** GET `path` (or `init.method`, `init.body`) with `token` (if any) and extra headers;
     * resolves {status, json, www, ms}. */
    async get(path, token, headers = {}, init = {}) {
      const started = performance.now();
      const response = await mf.dispatchFetch(`http://api.test${path}`, {
        ...init,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      });
      const text = await response.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {}
      return {
        status: response.status,
        json,
        www: response.headers.get("www-authenticate"),
        ms: performance.now() - started,
      };
    },
    dispose: () => mf.dispose(),
  };
}

/** Repeats `probe` every `everyMs` until `done(result)` or `timeoutMs`; returns the last
 * result and the time taken. */
export async function until(probe, done, { everyMs = 25, timeoutMs = 10000 } = {}) {
  const started = performance.now();
  for (;;) {
    const result = await probe();
    const ms = performance.now() - started;
    if (done(result) || ms > timeoutMs) return { result, ms };
    await sleep(everyMs);
  }
}
