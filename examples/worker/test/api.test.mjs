// The JS API itself (revguard.js over the wasm build), in Node's V8: errors and their codes,
// the fetch schedule, introspection ids, and bad input that must never throw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { Engine, RevguardError, initRevguard } from "../revguard.js";

initRevguard(await readFile(new URL("../pkg/revguard_bg.wasm", import.meta.url)));
const file = JSON.parse(await readFile(new URL("../../../tests/cases/decisions.json", import.meta.url), "utf8"));
const snapshot = Buffer.from(file.snapshot, "base64");
const delta = Buffer.from(file.delta, "base64");
const byName = (name) => file.cases.find((c) => c.name === name);
const flagged = byName("a snapshot hit on jti asks for introspection");
const valid = byName("a valid token is allowed with identity headers");

function loaded(config = file.config) {
  const engine = new Engine(config);
  engine.loadKeys(0, file.jwks[0], valid.now);
  engine.loadSnapshot(snapshot);
  engine.loadDelta(delta);
  return engine;
}

function code(fn) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RevguardError, `${error}`);
    return error.code;
  }
  assert.fail("did not throw");
}

test("a bad configuration throws invalid_config naming the field", () => {
  const bad = { ...file.config, issuers: [{ ...file.config.issuers[0], algorithms: ["RS257"] }] };
  try {
    new Engine(bad);
    assert.fail("accepted");
  } catch (error) {
    assert.equal(error.code, "invalid_config");
    assert.match(error.message, /issuers\[0\]\.algorithms\[0\]/);
    assert.doesNotMatch(error.message, /s3cret/, "never the client secret");
  }
  assert.equal(code(() => new Engine("{")), "invalid_config");
  assert.equal(code(() => new Engine("")), "invalid_config");
});

test("rejected data throws a code and keeps the last good state", () => {
  const engine = loaded();
  const generation = engine.status(valid.now).snapshot_generation;
  assert.equal(generation, 6);
  assert.equal(code(() => engine.loadSnapshot(new Uint8Array([1, 2, 3]))), "snapshot_rejected");
  const corrupt = Uint8Array.from(snapshot);
  corrupt[corrupt.length - 1] ^= 1;
  assert.equal(code(() => engine.loadSnapshot(corrupt)), "snapshot_rejected");
  assert.equal(code(() => engine.loadKeys(0, "{\"keys\":7}", valid.now)), "keys_rejected");
  assert.equal(code(() => engine.loadKeys(3, file.jwks[0], valid.now)), "no_such_issuer");
  assert.equal(code(() => new Engine(file.config).loadDelta(delta)), "no_base_snapshot");
  assert.equal(engine.status(valid.now).snapshot_generation, generation);
  assert.equal(engine.decide({ ...valid.request, url: valid.request.path, now: valid.now }).decision, "allow");
});

test("now must be Unix seconds; statuses must be HTTP statuses", () => {
  const engine = loaded();
  const req = { method: "GET", url: "/orders", headers: [] };
  for (const now of [-1, NaN, Infinity, 2 ** 60, "soon", undefined]) {
    assert.equal(code(() => engine.decide({ ...req, now })), "invalid_argument", String(now));
  }
  assert.equal(code(() => engine.fetchCompleted("snapshot", { status: 70000 }, valid.now)), "invalid_argument");
  assert.equal(code(() => engine.fetchCompleted("keys:0", null, valid.now)), "invalid_argument");
  assert.equal(code(() => engine.introspectionAnswered(12345, null, valid.now)), "unknown_introspection");
});

test("an introspect decision carries the call; one call per token, answered once", () => {
  const engine = loaded();
  const req = { method: "GET", url: flagged.request.path, headers: flagged.request.headers, now: flagged.now };
  const first = engine.decide(req);
  const second = engine.decide(req);
  assert.equal(first.decision, "introspect");
  assert.notEqual(first.id, second.id);
  assert.equal(first.key, second.key, "same token, same key");
  assert.equal(first.call, second.call, "one call in flight");
  assert.equal(first.send, true, "the first request sends the call");
  assert.equal(second.send, false, "the second waits for it");
  assert.equal(first.request.method, "POST");
  assert.equal(first.request.upstream, "idp");
  assert.equal(first.request.path, "/introspect");
  assert.match(first.request.body, /^token=.*&token_type_hint=access_token$/);
  assert.ok(first.request.headers.some(([n, v]) => n === "authorization" && v.startsWith("Basic ")));
  assert.equal(engine.status(flagged.now).pending_introspections, 2);

  const answer = { status: 200, body: '{"active":false}' };
  const done = engine.introspectionAnswered(first.call, answer, flagged.now);
  assert.deepEqual(done.map((d) => d.id), [first.id, second.id], "every waiting request, in order");
  for (const d of done) {
    assert.equal(d.decision, "deny");
    assert.equal(d.reason, "revoked");
  }
  assert.equal(code(() => engine.introspectionAnswered(first.call, answer, flagged.now)), "unknown_introspection");
  assert.equal(engine.decide(req).reason, "revoked", "cached: no new call");
  assert.equal(engine.status(flagged.now).pending_introspections, 0);
});

test("waiting introspections are bounded", () => {
  const engine = loaded();
  const req = { method: "GET", url: flagged.request.path, headers: flagged.request.headers, now: flagged.now };
  const decisions = [];
  for (let i = 0; i < 10_050; i++) decisions.push(engine.decide(req));
  assert.equal(engine.status(flagged.now).pending_introspections, 10_000);
  // Past the bound, a request is decided at once as if its call had failed.
  assert.equal(decisions[10_000].decision, "deny");
  assert.equal(decisions[10_000].reason, "introspection_failed");
  const done = engine.introspectionAnswered(decisions[0].call, null, flagged.now);
  assert.equal(done.length, 10_000);
  assert.ok(done.every((d) => d.reason === "introspection_failed"));
  assert.equal(engine.status(flagged.now).pending_introspections, 0);
});

test("the fetch schedule: due fetches, conditional requests, backoff", () => {
  const config = {
    ...file.config,
    revocation: { ...file.config.revocation, refresh_interval_secs: 10, max_staleness_secs: 120 },
  };
  const engine = new Engine(config);
  engine.setDefaultNodeId("edge-a");
  const t = valid.now;
  const due = engine.dueFetches(t);
  assert.deepEqual(due.map((f) => f.kind), ["keys.0", "snapshot"], "no delta before a snapshot");
  assert.deepEqual([due[0].upstream, due[0].method, due[0].path], ["idp", "GET", "/jwks"]);
  assert.deepEqual(engine.dueFetches(t), [], "in flight");
  assert.deepEqual(engine.fetchCompleted("keys.0", { status: 200, body: file.jwks[0] }, t), {
    outcome: "updated",
    value: 1,
  });
  const updated = engine.fetchCompleted("snapshot", { status: 200, etag: '"v1"', body: snapshot }, t);
  assert.deepEqual(updated, { outcome: "updated", value: 5 });

  // A new snapshot: its delta at once. Nothing to be conditional on yet, so the origin could
  // not hold it: no `Prefer: wait`, the plain timeout.
  const first = engine.dueFetches(t);
  assert.deepEqual(first.map((f) => f.kind), ["delta"]);
  assert.equal(first[0].headers.find(([name]) => name === "prefer"), undefined);
  assert.equal(first[0].timeout_ms, config.revocation.timeout_ms ?? 2000);
  // "No delta yet" with a validator: asked again at once, conditional on it, asking the origin
  // to hold it (`hold_secs`, 25 by default) and waiting that much longer for the answer.
  assert.deepEqual(engine.fetchCompleted("delta", { status: 404, etag: '"none-5"' }, t), { outcome: "not_modified" });
  const held = engine.dueFetches(t);
  assert.deepEqual(held.map((f) => f.kind), ["delta"]);
  assert.deepEqual(held[0].headers.find(([name]) => name === "prefer"), ["prefer", "wait=25"]);
  assert.equal(held[0].timeout_ms, (config.revocation.timeout_ms ?? 2000) + 25000);
  // The same "no delta yet" again from a server that did not hold: polled at the interval.
  assert.deepEqual(engine.fetchCompleted("delta", { status: 404, etag: '"none-5"' }, t), { outcome: "not_modified" });
  assert.deepEqual(engine.dueFetches(t + 9), []);

  // The delta waits while the snapshot is in flight (it applies to the snapshot it was built on).
  const next = engine.dueFetches(t + 10);
  assert.deepEqual(next.map((f) => f.kind), ["snapshot"]);
  const snap = next.find((f) => f.kind === "snapshot");
  // Conditional, and naming the node and the generation it holds (the origin's fleet view).
  assert.deepEqual(snap.headers, [
    ["if-none-match", '"v1"'],
    ["x-revguard-node", "edge-a"],
    ["x-revguard-generation", "5"],
  ]);
  assert.deepEqual(engine.fetchCompleted("snapshot", { status: 304 }, t + 10), { outcome: "not_modified" });
  assert.deepEqual(engine.dueFetches(t + 10).map((f) => f.kind), ["delta"]);
  const failed = engine.fetchCompleted("delta", null, t + 10);
  assert.equal(failed.outcome, "failed");
  assert.match(failed.error, /unreachable/);
  assert.deepEqual(engine.dueFetches(t + 11), [], "backoff");
  assert.deepEqual(engine.dueFetches(t + 12).map((f) => f.kind), ["delta"]);
  assert.deepEqual(engine.fetchCompleted("delta", { status: 200, body: delta }, t + 12), {
    outcome: "updated",
    value: 6,
  });
  const status = engine.status(t + 12);
  assert.equal(status.snapshot_generation, 6);
  assert.equal(status.snapshot_stale, false);
});

test("headers as a Headers object, pairs or a plain object decide the same", () => {
  const engine = loaded();
  const auth = valid.request.headers[0][1];
  const base = { method: "GET", url: "https://api.example/orders?x=1#frag", now: valid.now };
  const forms = [new Headers({ Authorization: auth }), [["Authorization", auth]], { authorization: auth }];
  for (const headers of forms) {
    const d = engine.decide({ ...base, headers });
    assert.equal(d.decision, "allow");
    assert.deepEqual(d.set_headers, valid.expect.set_headers);
  }
});

test("an allow carries the normalised path; an ambiguous path is invalid_path", () => {
  const engine = loaded();
  const auth = valid.request.headers[0][1];
  const decide = (url, headers = [["authorization", auth]], method = "GET") =>
    engine.decide({ method, url, headers, now: valid.now });
  const normalised = decide("https://api.example//orders/./x/..?q=%2e#frag");
  assert.equal(normalised.decision, "allow");
  assert.equal(normalised.path, "/orders/?q=%2e");
  assert.equal(decide("/orders?q=1").path, null, "already normal");
  const forged = decide("/orders", [["authorization", auth], ["X_Auth_Subject", "mallory"]]);
  assert.ok(forged.remove_headers.some((h) => h.toLowerCase() === "x_auth_subject"), forged.remove_headers);
  for (const url of ["/orders%2Fx", "/orders/%252e%252e/admin", "/a;b=1/orders"]) {
    const d = decide(url);
    assert.equal(d.decision, "deny", url);
    assert.equal(d.status, 400, url);
    assert.equal(d.reason, "invalid_path", url);
    assert.doesNotMatch(d.www_authenticate, /error=/, url);
  }
  assert.equal(decide("/orders", [["authorization", auth]], "get").reason, "invalid_request");
});

test("a NUL in a caller-made header never makes up another header", () => {
  // Headers cross into wasm as one NUL-joined string with their count (no HTTP field holds NUL).
  const engine = loaded();
  const auth = valid.request.headers[0][1];
  const base = { method: "GET", url: "/orders", now: valid.now };
  assert.equal(engine.decide({ ...base, headers: [["authorization", auth]] }).decision, "allow");
  for (const headers of [
    [["x-note", `a\0authorization\0${auth}`]],
    [["authorization", auth], ["x-auth-subject\0x", "mallory"]],
    { [`x\0authorization`]: auth },
  ]) {
    const d = engine.decide({ ...base, headers });
    assert.equal(d.decision, "deny", JSON.stringify(headers));
    assert.equal(d.reason, "invalid_request", JSON.stringify(headers));
  }
});

test("arbitrary request input never throws (a denial instead)", () => {
  const engine = loaded();
  let seed = 7;
  const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const pieces = ["Bearer ", "bearer", " ", ".", "..", "eyJ", "%", "\u0000", "\u00ff", "\ud800", "é", "=", ",", "a", "/"];
  const junk = () => Array.from({ length: rand(40) }, () => pieces[rand(pieces.length)]).join("");
  const token = valid.request.headers[0][1].slice(7);
  for (let i = 0; i < 3000; i++) {
    const headers = [];
    for (let h = rand(4); h > 0; h--) {
      const name = ["authorization", "cookie", "x-auth-subject", junk()][rand(4)];
      const value = rand(3) === 0 ? `Bearer ${token.slice(0, rand(token.length))}${junk()}` : junk();
      headers.push([name, value]);
    }
    const url = ["/", "http://h", "", junk(), `/orders?${junk()}`, `https://x/${junk()}`][rand(6)];
    const method = ["GET", "POST", junk()][rand(3)];
    const d = engine.decide({ method, url, headers, now: valid.now });
    assert.ok(["allow", "deny", "introspect"].includes(d.decision));
    if (d.decision === "deny") assert.ok(d.status >= 400 && d.reason);
    if (d.decision === "introspect") engine.introspectionAnswered(d.call, { status: 200, body: junk() }, valid.now);
  }
});
