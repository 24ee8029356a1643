// revguard's JS API: the same Rust core as the proxy-wasm filter, built with wasm-bindgen
// (`./build` writes ./pkg). Plain objects in, plain objects out; no I/O here (see
// revguard-worker.js for the worker that fetches, introspects and forwards).
//
//   import { initRevguard, Engine } from "./revguard.js";
//   initRevguard(wasmModule);                       // a WebAssembly.Module or the .wasm bytes
//   const engine = new Engine(config);              // object or JSON text (docs/CONFIGURATION.md)
//   engine.loadSnapshot(bytes);                     // and loadKeys / loadDelta, or let
//                                                   // dueFetches / fetchCompleted drive them
//   const d = engine.decide({ method, url, headers, now });
//   // d.decision: "allow" | "deny" | "introspect" (then, when d.send: send d.request and
//   // report it with introspectionAnswered(d.call, answer, now): the decisions of every
//   // request waiting for that call, each with its d.id)

import { initSync, EdgeEngine, notReady as wasmNotReady } from "./pkg/revguard.js";

/** A misuse or rejected input. `code` is stable (invalid_config, keys_rejected, ...). */
export class RevguardError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "RevguardError";
    this.code = code;
  }
}

let initialized = false;

/** Instantiates the wasm module once per isolate: a WebAssembly.Module, or its bytes. */
export function initRevguard(module) {
  if (!initialized) {
    initSync({ module });
    initialized = true;
  }
}

/** Runs a wasm call, turning its `code: message` errors into RevguardError. */
function call(fn) {
  try {
    return fn();
  } catch (error) {
    const message = String(error?.message ?? error);
    const match = /^([a-z_]+): /.exec(message);
    throw new RevguardError(match ? match[1] : "internal", message);
  }
}

/** Bytes from a Uint8Array, ArrayBuffer or string. */
function bytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value == null) return new Uint8Array(0);
  throw new RevguardError("invalid_argument", "invalid_argument: expected bytes or a string");
}

/** Headers as the wasm side takes them: every name and value joined by NUL in one string
 * (one copy into wasm, not one per field), and their count. From a Headers object, an array
 * of [name, value] pairs, or a plain object. No HTTP field contains NUL; a NUL in a
 * caller-made header makes the count disagree and the engine deny the request. */
function joinedHeaders(headers) {
  let text = "";
  let count = 0;
  if (headers == null) return [text, count];
  const pairs =
    typeof headers.entries === "function" && !Array.isArray(headers)
      ? headers.entries()
      : Array.isArray(headers)
        ? headers
        : Object.entries(headers);
  for (const [name, value] of pairs) {
    text += count === 0 ? `${name}\0${value}` : `\0${name}\0${value}`;
    count++;
  }
  return [text, count];
}

/** An HTTP status, or undefined for a failed call (timeout, reset, unreachable). */
function statusOf(answer) {
  return answer == null || answer.status == null ? undefined : answer.status;
}

/** The deny decision for a worker that cannot decide yet (not configured, or failing before
 * the engine answered): 503 `not_ready`, the reply every build gives. Needs initRevguard. */
export function notReady(realm = "") {
  return JSON.parse(call(() => wasmNotReady(String(realm))));
}

export class Engine {
  #inner;

  /** `config`: the configuration object or its JSON text. Throws RevguardError
   * (`invalid_config`) naming every bad field. */
  constructor(config) {
    const text = typeof config === "string" ? config : JSON.stringify(config);
    this.#inner = call(() => new EdgeEngine(text));
  }

  /** Names this isolate in the origin's fleet view (sent with every revocation fetch),
   * unless the configuration's `revocation.node_id` does. */
  setDefaultNodeId(id) {
    this.#inner.setDefaultNodeId(String(id));
  }

  /** Loads issuer #`issuer`'s JWKS; returns the number of usable keys. */
  loadKeys(issuer, jwks, now) {
    return call(() => this.#inner.loadKeys(issuer, bytes(jwks), now));
  }

  /** Loads a full signed snapshot; returns the generation in force. */
  loadSnapshot(snapshot) {
    return call(() => this.#inner.loadSnapshot(bytes(snapshot)));
  }

  /** Loads a signed delta for the current snapshot; returns the generation in force. */
  loadDelta(delta) {
    return call(() => this.#inner.loadDelta(bytes(delta)));
  }

  /** Decides one request. `url`: absolute URL or path with query (or `target`: the raw
   * request target as sent, judged as is); `headers`: Headers, pairs
   * or an object; `now`: Unix seconds. Never throws on request content: a bad request is a
   * denial. Returns one of
   *   {decision: "allow", remove_headers, set_headers, path, fail_open, log}
   *     (`path`: the normalised target, path plus the unchanged query, to forward instead
   *     of the request's; null when that is already normal)
   *   {decision: "deny", status, reason, www_authenticate, body, log, log_line}
 *     (`log_line`: the structured log line for the denial, JSON text, never the token)
   *   {decision: "introspect", id, call, send, key, request: {upstream, method, path,
   *    authority, headers, body, timeout_ms}, log}
   *     (the engine keeps one call in flight per token: `send` is true for the first request
   *     with the token, which sends `request`; every request waits for call `call`, and gets
   *     its decision, under its `id`, from introspectionAnswered)                          */
  decide({ method, url, target, headers, now }) {
    // `target` instead of `url`: the raw request target as a proxy delivers it, judged as is.
    const asSent = target !== undefined;
    const input = String(asSent ? target : url);
    const [joined, count] = joinedHeaders(headers);
    return JSON.parse(
      call(() => this.#inner.decide(String(method), input, joined, count, now, asSent)),
    );
  }

  /** Reports the answer to introspection call `callId` (an `introspect` decision's `call`):
   * `{status, body}`, or null when the call failed (timeout, reset). Returns the decisions,
   * allow or deny, of every request that waited for it: [{id, decision, ...}]. Throws
   * RevguardError `unknown_introspection` for a call not in flight (answered already). */
  introspectionAnswered(callId, answer, now) {
    return JSON.parse(
      call(() =>
        this.#inner.introspectionAnswered(callId, statusOf(answer), bytes(answer?.body), now),
      ),
    );
  }

  /** The fetches due now: [{kind, upstream, method, path, authority, headers, body,
   * timeout_ms}]. Each is in flight until reported with fetchCompleted. */
  dueFetches(now) {
    return JSON.parse(call(() => this.#inner.dueFetches(now)));
  }

  /** Reports a fetch: `{status, etag, body, preferenceApplied, snapshotGeneration}` (the last
   * two: the answer's `Preference-Applied` and `x-revguard-snapshot-generation` headers, which
   * schedule the next held fetch), or null when the call failed. Returns
   * {outcome: "updated", value} | {outcome: "not_modified"} | {outcome: "failed", error}. */
  fetchCompleted(kind, answer, now) {
    const text = (v) => (v == null ? undefined : String(v));
    return JSON.parse(
      call(() =>
        this.#inner.fetchCompleted(
          kind,
          statusOf(answer),
          text(answer?.etag),
          bytes(answer?.body),
          now,
          text(answer?.preferenceApplied),
          text(answer?.snapshotGeneration),
        ),
      ),
    );
  }

  /** {snapshot_generation, snapshot_age_secs, snapshot_stale, key_set_age_secs,
   * verified_cache_entries, introspection_cache_entries, pending_introspections} */
  status(now) {
    return JSON.parse(call(() => this.#inner.status(now)));
  }

  /** Frees the wasm memory now instead of at garbage collection. */
  free() {
    this.#inner.free();
  }
}
