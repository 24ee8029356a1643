// The shared decision cases (every tests/cases/*.json: decisions.json, requests.json, ...)
// against the edge build, exactly as tests/decision_cases.rs runs them natively: a fresh engine
// per case, keys, snapshot and delta loaded at the case's `now`, decide, feed the recorded
// introspection answer back, normalize. Runs unchanged in workerd (test/cases-worker.js), Deno
// (test/cases.deno.js) and Node.
import { Engine } from "../revguard.js";

function base64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** The parts of a decision every build must agree on: of the log only `token_hash` (the rest is
 * adapter-specific). */
export function normalize(d) {
  switch (d.decision) {
    case "allow":
      return {
        decision: "allow",
        remove_headers: d.remove_headers,
        set_headers: d.set_headers,
        path: d.path ?? null,
        fail_open: d.fail_open,
        token_hash: d.log.token_hash ?? null,
      };
    case "deny":
      return {
        decision: "deny",
        status: d.status,
        reason: d.reason,
        www_authenticate: d.www_authenticate,
        body: d.body,
        token_hash: d.log.token_hash ?? null,
      };
    default:
      return { decision: "introspect" };
  }
}

export function runCase(file, c) {
  const engine = new Engine(file.config);
  try {
    file.jwks.forEach((jwks, issuer) => engine.loadKeys(issuer, jwks, c.now));
    engine.loadSnapshot(base64(file.snapshot));
    if (file.delta != null) engine.loadDelta(base64(file.delta));
    const { method, path, headers } = c.request;
    // The raw request target, as the other builds receive it.
    let d = engine.decide({ method, target: path, headers, now: c.now });
    if (d.decision === "introspect" && c.introspection != null) {
      const answer =
        c.introspection.status == null ? null : { status: c.introspection.status, body: c.introspection.body ?? "" };
      const id = d.id;
      d = engine.introspectionAnswered(d.call, answer, c.now).find((w) => w.id === id);
    }
    return normalize(d);
  } finally {
    engine.free();
  }
}

/** Deep equality on JSON values, key order ignored. */
export function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

/** Every case: [{name, ok, got, expect}]. */
export function runAll(file) {
  return file.cases.map((c) => {
    const got = runCase(file, c);
    return { name: c.name, ok: sameJson(got, c.expect), got, expect: c.expect };
  });
}

/** The cases files to run, from a directory listing of tests/cases: every `*.json`, sorted.
 * decisions.json must be there (a missing file is an error, never a skipped run). */
export function caseFileNames(listing) {
  const names = listing.filter((name) => name.endsWith(".json")).sort();
  if (!names.includes("decisions.json")) throw new Error(`no decisions.json in tests/cases: ${names}`);
  return names;
}

/** Fewest cases a file must hold: decisions.json is the full set, the others at least one. */
export function minimumCases(name) {
  return name === "decisions.json" ? 20 : 1;
}
