// The worker end to end, all parts real: the Cloudflare entry (worker.js) in workerd via
// Miniflare, oidc-provider as the OAuth server, snapshots built and signed by the revguard CLI
// and served by a loopback origin, and a backend that echoes the headers it receives.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Idp, Origin, claimsOf, guardConfig, sleep, startBackend, startWorker, until } from "./support.mjs";

/** Starts an IdP, an origin (first snapshot published) and a backend for one scenario. */
async function parts() {
  const idp = await new Idp().start();
  const origin = await new Origin().start();
  origin.publishSnapshot();
  const backend = await startBackend();
  return {
    idp,
    origin,
    backend,
    async close() {
      await Promise.allSettled([idp.stop(), origin.stop(), backend.stop()]);
      origin.cleanup();
    },
  };
}

describe("1. a JWT access token from the server is verified locally", () => {
  let p;
  let worker;
  before(async () => {
    p = await parts();
    worker = await startWorker({ config: guardConfig(p.idp, p.origin), ...p });
  });
  after(async () => {
    await worker?.dispose();
    await p?.close();
  });

  test("accepted, identity headers reach the backend, forged ones do not", async () => {
    const jwt = await p.idp.issueJwt();
    const header = JSON.parse(Buffer.from(jwt.split(".")[0], "base64url"));
    assert.equal(header.typ, "at+jwt");
    assert.equal(header.alg, "ES256");
    const introspectionsBefore = p.idp.introspections;
    const r = await worker.get("/orders?x=1", jwt, { "x-auth-subject": "mallory" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.url, "/orders?x=1");
    assert.equal(r.json.headers["x-auth-subject"], "app");
    assert.equal(r.json.headers["x-auth-client"], "app");
    assert.equal(r.json.headers["x-auth-scope"], "orders:read");
    assert.equal(p.idp.introspections, introspectionsBefore, "a JWT is verified locally");

    // The backend gets the normalised path (never `//host/...` read as another host) and no
    // other spelling of an identity header.
    const odd = await worker.get("//orders/./x/..//y?x=%2e", jwt, { x_auth_subject: "mallory" });
    assert.equal(odd.status, 200, JSON.stringify(odd.json));
    assert.equal(odd.json.url, "/orders/y?x=%2e");
    assert.equal(odd.json.headers["x_auth_subject"], undefined);
    assert.equal(odd.json.headers["x-auth-subject"], "app");
    const ambiguous = await worker.get("/orders%2Fy", jwt);
    assert.equal(ambiguous.status, 400);
    assert.equal(ambiguous.json.error, "invalid_path");

    const posted = await worker.get("/orders", jwt, {}, { method: "POST", body: "order=42" });
    assert.equal(posted.status, 200);
    assert.equal(posted.json.method, "POST");
    assert.equal(posted.json.body, "order=42");
  });

  test("no token, a tampered token and garbage get RFC 6750 denials with reason codes", async () => {
    const missing = await worker.get("/orders");
    assert.equal(missing.status, 401);
    assert.equal(missing.json.error, "missing_token");
    assert.equal(missing.www, 'Bearer realm="revguard"');

    const jwt = await p.idp.issueJwt();
    const [h, , s] = jwt.split(".");
    const forged = Buffer.from(JSON.stringify({ ...claimsOf(jwt), sub: "admin" })).toString("base64url");
    const tampered = await worker.get("/orders", `${h}.${forged}.${s}`);
    assert.equal(tampered.status, 401);
    assert.equal(tampered.json.error, "bad_signature");
    assert.match(tampered.www, /error="invalid_token"/);

    for (const junk of ["a.b.c", "\u00ff\u00fe.x.y", "x".repeat(10000), "e30.e30.e30"]) {
      const r = await worker.get("/orders", junk);
      assert.ok([400, 401].includes(r.status), `${r.status} for junk`);
      assert.ok(r.json?.error, "a reason code, not a stack trace");
    }
  });
});

describe("2. revoking a JWT's jti at the origin", () => {
  let p;
  let worker;
  before(async () => {
    p = await parts();
    // oidc-provider refuses to introspect JWTs (400 unsupported_token_type), so a filter hit is
    // final by default here; /confirmed shows what asking it does.
    const top = {
      default_route: { introspection: "never" },
      routes: [{ name: "confirmed", path_prefix: "/confirmed", introspection: "on_snapshot_hit" }],
    };
    worker = await startWorker({ config: guardConfig(p.idp, p.origin, { top }), ...p });
  });
  after(async () => {
    await worker?.dispose();
    await p?.close();
  });

  test("by delta: denied after the next refresh (propagation measured)", async () => {
    const samples = [];
    for (let i = 0; i < 5; i++) {
      const jwt = await p.idp.issueJwt();
      assert.equal((await worker.get("/orders", jwt)).status, 200);
      await sleep(137 + i * 211); // revoke at different points of the refresh cycle
      p.origin.revokeByDelta({ jti: claimsOf(jwt).jti });
      const { result, ms } = await until(() => worker.get("/orders", jwt), (r) => r.status !== 200);
      assert.equal(result.status, 401);
      assert.equal(result.json.error, "revoked");
      assert.ok(ms < 3500, `propagated in ${ms} ms`);
      samples.push(ms);
    }
    samples.sort((a, b) => a - b);
    console.log(
      `propagation by delta (refresh_interval_secs 1, a request every 25 ms), 5 revocations: ` +
        `min ${samples[0].toFixed(0)} ms, median ${samples[2].toFixed(0)} ms, max ${samples[4].toFixed(0)} ms`,
    );
  });

  test("by full snapshot: the filter hit denies; a confirming route asks the server", async () => {
    const jwt = await p.idp.issueJwt();
    assert.equal((await worker.get("/orders", jwt)).status, 200);
    const calls = p.idp.introspections;
    p.origin.revokeBySnapshot({ jti: claimsOf(jwt).jti });
    const { result, ms } = await until(() => worker.get("/orders", jwt), (r) => r.status !== 200);
    assert.equal(result.status, 401);
    assert.equal(result.json.error, "revoked");
    assert.equal(p.idp.introspections, calls, "introspection: never");
    console.log(`propagation (full snapshot, filter hit): ${ms.toFixed(0)} ms`);

    const confirmed = await worker.get("/confirmed", jwt);
    assert.equal(p.idp.introspections, calls + 1, "the filter hit was sent to the server");
    assert.equal(confirmed.status, 503, "the server refuses JWTs: introspection_failure (deny)");
    assert.equal(confirmed.json.error, "introspection_failed");
  });
});

describe("3. opaque tokens go to the server's introspection endpoint", () => {
  let p;
  let worker;
  before(async () => {
    p = await parts();
    worker = await startWorker({ config: guardConfig(p.idp, p.origin), ...p });
  });
  after(async () => {
    await worker?.dispose();
    await p?.close();
  });

  test("active: allowed with identity from the answer; cached; one call for concurrent requests", async () => {
    const token = await p.idp.issueOpaque();
    assert.equal(token.split(".").length, 1, "opaque");
    const calls = p.idp.introspections;
    const burst = await Promise.all(Array.from({ length: 8 }, () => worker.get("/orders", token)));
    for (const r of burst) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      // The identity comes from the answer (the server gives scope and client_id, no sub).
      assert.equal(r.json.headers["x-auth-scope"], "orders:read");
    }
    assert.equal(p.idp.introspections, calls + 1, "8 concurrent requests, one callout");
    for (let i = 0; i < 5; i++) assert.equal((await worker.get("/orders", token)).status, 200);
    assert.equal(p.idp.introspections, calls + 1, "answers are cached");
    console.log(`introspection callouts for 13 requests with one opaque token: ${p.idp.introspections - calls}`);
  });

  test("after RFC 7009 revocation at the server: denied once the cached answer expires", async () => {
    const token = await p.idp.issueOpaque();
    assert.equal((await worker.get("/orders", token)).status, 200);
    await p.idp.revoke(token);
    const { result, ms } = await until(() => worker.get("/orders", token), (r) => r.status !== 200, {
      everyMs: 100,
    });
    assert.equal(result.status, 401);
    assert.equal(result.json.error, "token_inactive");
    console.log(`revocation at the server enforced after ${ms.toFixed(0)} ms (cache_ttl_secs 2)`);
    const calls = p.idp.introspections;
    assert.equal((await worker.get("/orders", token)).status, 401);
    assert.equal(p.idp.introspections, calls, "the inactive answer is cached");
  });
});

describe("4. the server or the origin down: the configured failure mode, no hung request", () => {
  test("introspection: server refusing connections, then hanging (timeout)", async () => {
    const p = await parts();
    const worker = await startWorker({ config: guardConfig(p.idp, p.origin), ...p });
    try {
      const token = await p.idp.issueOpaque();
      const jwt = await p.idp.issueJwt();
      assert.equal((await worker.get("/orders", jwt)).status, 200, "keys loaded");

      p.idp.mode = "hang";
      const hung = await worker.get("/orders", token);
      assert.equal(hung.status, 503);
      assert.equal(hung.json.error, "introspection_failed");
      assert.equal(hung.www, 'Bearer realm="revguard"', "no invalid_token: not the client's fault");
      assert.ok(hung.ms < 2000, `answered in ${hung.ms} ms (timeout_ms 500)`);

      await p.idp.stop();
      // A token the worker has not seen, so no cached answer decides.
      const down = await worker.get("/orders", `${token}x`);
      assert.equal(down.status, 503);
      assert.equal(down.json.error, "introspection_failed");
      assert.ok(down.ms < 2000, `answered in ${down.ms} ms`);
      assert.equal((await worker.get("/orders", jwt)).status, 200, "local JWTs still pass");
      console.log(`IdP hanging: 503 in ${hung.ms.toFixed(0)} ms; IdP down: 503 in ${down.ms.toFixed(0)} ms`);
    } finally {
      await worker.dispose();
      await p.close();
    }
  });

  test("introspection failure mode allow: let through, marked fail-open", async () => {
    const p = await parts();
    const config = guardConfig(p.idp, p.origin, { failure_modes: { introspection_failure: "allow" } });
    const worker = await startWorker({ config, ...p });
    try {
      const token = await p.idp.issueOpaque();
      p.idp.mode = "hang";
      const r = await worker.get("/orders", token);
      assert.equal(r.status, 200);
      assert.equal(r.json.headers["x-auth-subject"], undefined, "no identity without an answer");
    } finally {
      await worker.dispose();
      await p.close();
    }
  });

  test("origin down or hanging: last good data within max staleness, then deny; recovers", async () => {
    const p = await parts();
    const config = guardConfig(p.idp, p.origin, { revocation: { max_staleness_secs: 3 } });
    const worker = await startWorker({ config, ...p });
    try {
      const jwt = await p.idp.issueJwt();
      assert.equal((await worker.get("/orders", jwt)).status, 200);

      p.origin.hang = true;
      await sleep(1100);
      const fresh = await worker.get("/orders", jwt);
      assert.equal(fresh.status, 200, "within max staleness: last good snapshot");
      assert.ok(fresh.ms < 400, `no waiting on the refresh (${fresh.ms} ms)`);

      const { result, ms } = await until(() => worker.get("/orders", jwt), (r) => r.status !== 200, {
        everyMs: 100,
      });
      assert.equal(result.status, 503);
      assert.equal(result.json.error, "stale_revocation_data");
      assert.ok(result.ms < 1500, `no hung request (${result.ms} ms, origin timeout 500 ms)`);
      console.log(`origin hanging: stale after ${ms.toFixed(0)} ms more, denials take ${result.ms.toFixed(0)} ms`);

      await p.origin.stop();
      const refused = await worker.get("/orders", jwt);
      assert.equal(refused.status, 503);
      assert.ok(refused.ms < 1500, `origin down: ${refused.ms} ms`);

      p.origin.hang = false;
      await p.origin.start();
      p.origin.publishSnapshot();
      const back = await until(() => worker.get("/orders", jwt), (r) => r.status === 200, { everyMs: 100 });
      assert.equal(back.result.status, 200, "recovers once the origin serves fresh data");
    } finally {
      await worker.dispose();
      await p.close();
    }
  });

  test("stale failure mode allow: verified tokens pass while the origin is down", async () => {
    const p = await parts();
    const config = guardConfig(p.idp, p.origin, {
      revocation: { max_staleness_secs: 1 },
      failure_modes: { revocation_stale: "allow" },
    });
    await p.origin.stop();
    const worker = await startWorker({ config, ...p });
    try {
      const jwt = await p.idp.issueJwt();
      const r = await worker.get("/orders", jwt);
      assert.equal(r.status, 200);
      assert.equal(r.json.headers["x-auth-subject"], "app");
    } finally {
      await worker.dispose();
      await p.close();
    }
  });
});

describe("5. key rotation at the server", () => {
  test("a new key is picked up without a restart; a retired key stops working", async () => {
    const p = await parts();
    const config = guardConfig(p.idp, p.origin, { jwks_upstream: { refresh_interval_secs: 1 } });
    const worker = await startWorker({ config, ...p });
    try {
      const old = await p.idp.issueJwt();
      assert.equal((await worker.get("/orders", old)).status, 200);

      p.idp.rotate();
      const rotated = await p.idp.issueJwt();
      assert.notEqual(JSON.parse(Buffer.from(rotated.split(".")[0], "base64url")).kid,
        JSON.parse(Buffer.from(old.split(".")[0], "base64url")).kid);
      const picked = await until(() => worker.get("/orders", rotated), (r) => r.status === 200);
      assert.equal(picked.result.status, 200, JSON.stringify(picked.result.json));
      console.log(`new signing key accepted after ${picked.ms.toFixed(0)} ms`);
      assert.equal((await worker.get("/orders", old)).status, 200, "the old key is still published");

      p.idp.rotate({ retire: true });
      const retired = await until(() => worker.get("/orders", old), (r) => r.status !== 200);
      assert.equal(retired.result.status, 401);
      assert.equal(retired.result.json.error, "unknown_key");
      assert.equal((await worker.get("/orders", rotated)).status, 200);
    } finally {
      await worker.dispose();
      await p.close();
    }
  });
});
