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
