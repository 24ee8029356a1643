// The edge build fed by the real origin service: the worker in workerd (Miniflare) fetches
// snapshots and deltas from `revguard origin serve` (a child process on loopback), a revocation
// POSTed to the origin's API is denied, and the origin's fleet view names the isolate and the
// generation it holds. Tokens come from oidc-provider.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Idp, OriginService, claimsOf, guardConfig, startBackend, startWorker, until } from "./support.mjs";

let idp;
let origin;
let backend;
let worker;

before(async () => {
  idp = await new Idp().start();
  origin = await new OriginService({ heartbeat_secs: 10 }).start();
  backend = await startBackend();
  const config = guardConfig(idp, origin, {
    revocation: { path: "/revocations/snapshot", delta_path: "/revocations/delta", node_id: "edge-e2e" },
    top: { default_route: { introspection: "never" } },
  });
  worker = await startWorker({ config, idp, origin, backend });
});

after(async () => {
  await worker?.dispose();
  await Promise.allSettled([idp?.stop(), origin?.stop(), backend?.stop()]);
  origin?.cleanup();
});

test("a revocation POSTed to the origin service is denied by the worker; the fleet view shows it", async () => {
  const samples = [];
  for (let i = 0; i < 3; i++) {
    const jwt = await idp.issueJwt();
    const first = await until(() => worker.get("/orders", jwt), (r) => r.status === 200);
    assert.equal(first.result.status, 200);
    const posted = performance.now();
    const answer = await origin.revoke({ jti: claimsOf(jwt).jti, reason: "e2e", source: "worker-tests" });
    assert.equal(answer.committed, true);
    const { result } = await until(() => worker.get("/orders", jwt), (r) => r.status !== 200);
    samples.push(performance.now() - posted);
    assert.equal(result.status, 401);
    assert.equal(result.json.error, "revoked");
  }
  samples.sort((a, b) => a - b);
  console.log(
    `origin service -> workerd: POST -> denial (refresh_interval_secs 1), 3 revocations: ` +
      samples.map((ms) => `${ms.toFixed(0)} ms`).join(", "),
  );
  // The isolate fetched with its node id and generation: the fleet view names it.
  const fleet = await origin.fleet();
  const node = fleet.nodes.find((n) => n.node === "edge-e2e");
  assert.ok(node, JSON.stringify(fleet));
  assert.ok(node.generation >= fleet.generation - 1, JSON.stringify(fleet));
});

// The defaults (hold_secs 25, refresh_interval_secs 10): the worker's background fetch of the
// delta is held by the origin until a new generation exists, so a revocation is denied about
// a round trip after it is published rather than up to 10 s later. Requests drive it (an
// isolate has no timers): the test's probes are that traffic.
test("with the default hold, a revocation reaches the worker in about a second, not a refresh interval", async () => {
  const config = guardConfig(idp, origin, {
    revocation: {
      path: "/revocations/snapshot", delta_path: "/revocations/delta", node_id: "edge-held",
      refresh_interval_secs: 10, timeout_ms: 2000, max_staleness_secs: 120,
    },
    top: { default_route: { introspection: "never" } },
  });
  const held = await startWorker({ config, idp, origin, backend });
  try {
    const samples = [];
    for (let i = 0; i < 3; i++) {
      const jwt = await idp.issueJwt();
      const first = await until(() => held.get("/orders", jwt), (r) => r.status === 200);
      assert.equal(first.result.status, 200);
      // A little traffic so the held request is out (the first delta answer is not held).
      await until(() => held.get("/orders", jwt), () => false, { everyMs: 50, timeoutMs: 300 });
      const posted = performance.now();
      await origin.revoke({ jti: claimsOf(jwt).jti, reason: "held", source: "worker-tests" });
      const { result } = await until(() => held.get("/orders", jwt), (r) => r.status !== 200, {
        everyMs: 25,
        timeoutMs: 30000,
      });
      samples.push(performance.now() - posted);
      assert.equal(result.status, 401);
      assert.equal(result.json.error, "revoked");
    }
    console.log(
      `origin service -> workerd, defaults (hold_secs 25, refresh_interval_secs 10): POST -> denial, ` +
        `3 revocations: ${samples.map((ms) => `${ms.toFixed(0)} ms`).join(", ")}`,
    );
  } finally {
    await held.dispose();
  }
});
