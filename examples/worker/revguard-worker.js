// The ready worker: all the I/O around the revguard engine, for any runtime with `fetch`
// (Cloudflare Workers / workerd, Deno). The engine decides; this module only carries out.
//
// - State lives in the isolate: one engine, its key sets, revocation data and caches.
// - Refreshes (snapshot, delta, key sets) piggy-back on requests, since an isolate has no
//   timers of its own: each request asks the engine what is due (conditional GETs, backoff
//   and staleness are the engine's) and runs it in the background (`waitUntil`). A request
//   waits for a refresh only when the data is missing or past its max staleness; if the
//   refresh fails, the configured failure mode decides.
// - The held fetch (`revocation.hold_secs`: the delta, asked with `Prefer: wait`) is one of
//   those background fetches: the origin answers it when a new generation exists, and the
//   next request after that answer starts the next one. A request never waits for it. On
//   Cloudflare Workers it must fit the 30 s `waitUntil` allows after the response (the
//   default 25 s hold plus the 2 s timeout does); see README.md for the bound this gives.
// - Introspection: one call in flight per token, shared by every request carrying it, with the
//   configured timeout; the engine caches the answer. The table of calls and waiting requests
//   is the engine's (the core's, as in the proxy-wasm filter): its decision says whether this
//   request sends the call, and its answer hands back every waiting request's decision. This
//   module only keeps each call's promise, under the call id the engine gave it.
// - Allowed requests go to the backend with identity headers (client-sent copies removed) and
//   the normalised path the rules matched (the decision's `path`, when the request's differs);
//   denials get the RFC 6750 challenge and the reason code. Bad input never becomes a 500.
//
//   import { createRevguard } from "./revguard-worker.js";
//   const guard = createRevguard({ wasm, config, upstreams: { idp: "https://idp.example.com" },
//                                  backend: "https://api.internal" });
//   export default { fetch: (request, env, ctx) => guard.handle(request, ctx) };

import { Engine, initRevguard, notReady } from "./revguard.js";

/** Fetched key sets and snapshots larger than this are refused unread (the largest
 * `max_snapshot_bytes` allowed; the engine applies the configured limit). */
const MAX_FETCH_BYTES = 256 * 1024 * 1024;
/** Introspection answers larger than this are refused unread (the largest
 * `max_response_bytes` allowed). */
const MAX_INTROSPECTION_BYTES = 1024 * 1024;

/**
 * options:
 *   wasm       WebAssembly.Module or bytes of pkg/revguard_bg.wasm
 *   config     revguard configuration (object or JSON text)
 *   upstreams  { name: "https://base" }: where the config's `upstream` names point (a name
 *              that is itself an http(s) URL needs no entry)
 *   backend    base URL that allowed requests are forwarded to (default: the request's own
 *              URL, which on Cloudflare is the zone's origin)
 *   fetch      fetch implementation (default globalThis.fetch)
 *   now        () => Unix seconds (default the system clock)
 *   nodeId     this isolate's name in the origin's fleet view (default: `isolate-<uuid>`;
 *              the config's revocation.node_id wins)
 *   log        (line: object) => void for the one line per denial and refresh failures
 *              (default console.log as JSON). Lines never carry a token.
 */
export function createRevguard(options) {
  initRevguard(options.wasm);
  const engine = new Engine(options.config);
  // Every isolate is one node of the fleet view: it fetches for itself.
  engine.setDefaultNodeId(options.nodeId ?? `isolate-${crypto.randomUUID()}`);
  const upstreams = options.upstreams ?? {};
  const doFetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const log = options.log ?? ((line) => console.log(JSON.stringify(line)));
  const backend = options.backend ? new URL(options.backend) : null;
  const issuersWithUpstream = issuerIndexesWithUpstream(options.config);

  /** Introspection calls in flight, by the call id the engine gave them: a promise of the
   * decisions (by request id) of every request that waited for the call. */
  const calls = new Map();
  /** Fetches in flight that a request may wait for (all but the held one). */
  const waitable = new Set();

  function urlFor(upstream, path) {
    const base = upstreams[upstream] ?? (/^https?:\/\//.test(upstream) ? upstream : null);
    if (base == null) throw new Error(`no URL for upstream "${upstream}"`);
    return new URL(path, base);
  }

  /** Sends a call the engine described; resolves {status, etag, body}, or null when the
   * call failed, timed out, or its body was over `maxBytes`. Never rejects. */
  async function send(call, maxBytes) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), call.timeout_ms);
    try {
      const response = await doFetch(urlFor(call.upstream, call.path), {
        method: call.method,
        headers: call.headers,
        body: call.method === "GET" || call.method === "HEAD" ? undefined : call.body,
        signal: controller.signal,
        redirect: "manual",
      });
      const body = await readCapped(response, maxBytes);
      if (body == null) return null;
      return {
        status: response.status,
        etag: response.headers.get("etag"),
        body,
        preferenceApplied: response.headers.get("preference-applied"),
        snapshotGeneration: response.headers.get("x-revguard-snapshot-generation"),
      };
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts every fetch due now (the engine marks each in flight, so a fetch is never sent
   * twice). Returns `{all, waitable}`: promises of all of them, and of those a request may
   * wait for (every fetch in flight but a held one), each resolved once reported to the
   * engine; null when nothing is in flight. */
  function refresh() {
    const started = engine.dueFetches(now()).map((call) => {
      const done = send(call, MAX_FETCH_BYTES).then((answer) => {
        const result = engine.fetchCompleted(call.kind, answer, now());
        if (result.outcome === "failed") {
          log({ event: "revguard.fetch_failed", kind: call.kind, error: result.error });
        }
      });
      // A held fetch may take `hold_secs`: no request waits for it.
      if (!isHeld(call)) {
        waitable.add(done);
        done.finally(() => waitable.delete(done));
      }
      return done;
    });
    if (started.length === 0 && waitable.size === 0) return null;
    return { all: Promise.all(started), waitable: Promise.all([...waitable]) };
  }

  /** Data missing or past its max staleness: the request waits for the refresh. */
  function mustWait() {
    const status = engine.status(now());
    return (
      status.snapshot_stale ||
      issuersWithUpstream.some((i) => status.key_set_age_secs[i] == null)
    );
  }

  /** The decision of a request the engine keeps waiting for introspection. The first request
   * for a token sends the call (the engine says so: `send`); the others await the same call,
   * and each takes its own decision, by its `id`, from what the engine hands back. (A request
   * awaits the sender's promise rather than being resolved by it: workerd cancels work resumed
   * from another request's context.) */
  async function introspect(decision, ctx) {
    if (decision.send) {
      const call = send(decision.request, MAX_INTROSPECTION_BYTES)
        .then((answer) => {
          const decisions = engine.introspectionAnswered(decision.call, answer, now());
          return new Map(decisions.map((d) => [d.id, d]));
        })
        .catch((error) => {
          log({ event: "revguard.error", error: String(error?.message ?? error) });
          return new Map();
        })
        .finally(() => calls.delete(decision.call));
      calls.set(decision.call, call);
      ctx?.waitUntil?.(call);
    }
    const decisions = await calls.get(decision.call);
    // Only if the engine failed: no decision for this request.
    return decisions?.get(decision.id) ?? notReady();
  }

  async function handle(request, ctx) {
    try {
      const pending = refresh();
      if (pending) {
        ctx?.waitUntil?.(pending.all);
        if (mustWait()) await pending.waitable;
      }
      const url = new URL(request.url);
      let decision = engine.decide({
        method: request.method,
        url: url.pathname + url.search,
        headers: request.headers,
        now: now(),
      });
      if (decision.decision === "introspect") decision = await introspect(decision, ctx);
      if (decision.decision === "allow") return await forward(request, url, decision);
      return deny(decision, request);
    } catch (error) {
      log({ event: "revguard.error", error: String(error?.message ?? error) });
      return deny(notReady(), request);
    }
  }

  async function forward(request, url, decision) {
    const headers = new Headers(request.headers);
    for (const name of decision.remove_headers) headers.delete(name);
    for (const [name, value] of decision.set_headers) headers.set(name, value);
    const target = withTarget(backend ?? url, decision.path ?? url.pathname + url.search);
    try {
      return await doFetch(
        new Request(target, {
          method: request.method,
          headers,
          body: request.body,
          redirect: "manual",
          duplex: "half",
        }),
      );
    } catch {
      return jsonResponse(502, { error: "backend_unreachable" });
    }
  }

  function deny(decision, request) {
    // The core's line (the same as every build's); only the request id is added here when
    // the engine did not see the request (`notReady`).
    const line = JSON.parse(decision.log_line);
    line.request_id ??= requestId(request);
    log(line);
    return denialResponse(decision);
  }

  return { handle, engine, refresh };
}

/** The reply of a worker that cannot decide yet (its configuration was refused): the engine's
 * 503 `not_ready` denial, the same as every build's. */
export function notReadyResponse(wasm) {
  try {
    initRevguard(wasm);
    return denialResponse(notReady());
  } catch {
    // The wasm module itself failed to load: no engine to ask.
    return new Response(null, { status: 503, headers: { "cache-control": "no-store" } });
  }
}

function denialResponse(decision) {
  return new Response(decision.body, {
    status: decision.status,
    headers: {
      "www-authenticate": decision.www_authenticate,
      "content-type": "application/json",
      "cache-control": "no-store",
    },
  });
}

/** `base` with its path and query replaced by `target` (`/path?query`). Never resolved as a
 * relative reference: `//host/x` stays a path on `base`'s host. */
function withTarget(base, target) {
  const url = new URL(base);
  const query = target.indexOf("?");
  url.pathname = query < 0 ? target : target.slice(0, query);
  url.search = query < 0 ? "" : target.slice(query);
  url.hash = "";
  return url;
}

/** Whether the origin may hold this fetch: the engine asked for it (`Prefer: wait`) and it is
 * conditional (`If-None-Match`: the origin holds only a request for data it has already sent;
 * a first fetch is answered at once, and a request may need to wait for it). */
function isHeld(call) {
  const headers = call.headers ?? [];
  const names = (Array.isArray(headers) ? headers.map((h) => h[0]) : Object.keys(headers)).map(
    (name) => String(name).toLowerCase(),
  );
  return names.includes("prefer") && names.includes("if-none-match");
}

/** Issuers whose keys are fetched: a request waits until each has a key set. */
function issuerIndexesWithUpstream(config) {
  const parsed = typeof config === "string" ? JSON.parse(config) : config;
  return (parsed.issuers ?? []).flatMap((issuer, i) => (issuer.jwks_upstream ? [i] : []));
}

/** The whole body, or null when it is over `maxBytes`. */
async function readCapped(response, maxBytes) {
  const declared = Number(response.headers.get("content-length"));
  if (declared > maxBytes) {
    await response.body?.cancel();
    return null;
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}

/** `x-request-id`, printable ASCII only and bounded, for log lines. */
function requestId(request) {
  const id = (request.headers.get("x-request-id") ?? "").replace(/[^\x21-\x7e]/g, "").slice(0, 128);
  return id || null;
}

function jsonResponse(status, value) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}
