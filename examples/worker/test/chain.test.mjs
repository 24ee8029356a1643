// The product's promise end to end, every part real and on loopback: a user signs out at
// oidc-provider; the provider's own back-channel logout call reaches `revguard origin serve`;
// the origin publishes a signed delta and answers the held requests of two gateways (the real
// filter `.wasm` in four worker VMs each, `revguard-test-host serve`) and of the edge build in
// workerd; every one of them denies the session's token. Likewise for a Shared Signals push.
// Times are printed, not asserted (the machine is shared); the campaign is bench-chain.mjs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { firstDenials, logout, pointNames, ssfSessionRevoked, startChain, summary } from "./chain.mjs";

let chain;

before(async () => {
  chain = await startChain({ gateways: 2, workers: 4, edge: true });
});

after(async () => {
  await chain?.stop();
});

function report(what, measured) {
  const names = pointNames(chain);
  for (const m of measured) {
    const missing = names.filter((_, i) => m.denials[i] === null);
    assert.deepEqual(missing, [], `${what}: still allowed after 30 s at ${missing.join(", ")}`);
  }
  const slowest = measured.map((m) => Math.max(...m.denials));
  console.log(`${what} -> denial at all ${names.length} enforcement points (defaults, held requests): ${summary(slowest)}`);
  const last = measured[measured.length - 1];
  console.log(`  per point, last one: ${names.map((n, i) => `${n} ${(last.denials[i] / 1000).toFixed(2)} s`).join("; ")}`);
}

test("a sign-out at oidc-provider is denied by every worker of both gateways and by workerd", async () => {
  const measured = [];
  for (let i = 0; i < 3; i++) measured.push(await logout(chain, `chain-user-${i}`));
  await firstDenials(chain, measured);
  report("oidc-provider sign-out (back-channel logout)", measured);

  // The denial names the revoked session (RFC 6750 401), not an outage.
  const denied = await chain.proxies[0].get("/orders", measured[0].token);
  assert.equal(denied.status, 401);
  assert.equal(denied.json.error, "revoked_session", JSON.stringify(denied.json));
  const edge = await chain.worker.get("/orders", measured[0].token);
  assert.equal(edge.json.error, "revoked_session", JSON.stringify(edge.json));

  // The origin recorded the sessions (from the provider's logout tokens) and the fleet view
  // shows the enforcement points at the current generation.
  const listed = await chain.origin.revocations({ kind: "sid" });
  const sids = JSON.stringify(listed);
  for (const m of measured) assert.ok(sids.includes(m.sid), `${m.sid} not listed: ${sids}`);
  const fleet = await chain.origin.fleet();
  const current = fleet.nodes.filter((n) => n.generation === fleet.generation);
  assert.ok(current.length >= 3, `expected both gateways and the isolate at the current generation: ${JSON.stringify(fleet)}`);
});

test("a Shared Signals session-revoked push is denied everywhere", async () => {
  const measured = [await ssfSessionRevoked(chain, "ssf-user")];
  await firstDenials(chain, measured);
  report("SSF push (CAEP session-revoked)", measured);
});
