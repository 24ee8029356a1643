// The whole revocation chain with real parts on loopback, for the chain test and the campaign
// benchmark (bench-chain.mjs): oidc-provider signs users in and out and makes its own
// back-channel logout call to the origin (`revguard origin serve`); a Shared Signals
// transmitter (SETs minted with npm `jose`) pushes to the same origin; the origin publishes
// signed deltas and holds the plugins' requests; two gateways (`revguard-test-host serve`, the
// real filter `.wasm` in several worker VMs each) and the edge build in workerd enforce.
import { createHash, randomUUID } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { TestHostGateway } from "./gateway.mjs";
import { Idp, Loopback, OriginService, guardConfig, sleep, startBackend, startWorker } from "./support.mjs";

export const SSF_ISSUER = "https://ssf-transmitter.test";
export const SSF_AUDIENCE = "https://revguard-origin.test";
const SSF_TOKEN = "ssf-chain-push-token-0123456789";
const SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

/** The plugin policy of every enforcement point: revocation settings are the defaults (held
 * delta requests, 10 s refresh interval) unless `revocation` overrides them; a snapshot hit is
 * denied without introspection, so a denial measures the revocation data alone. */
function policy(idp, origin, revocation) {
  const config = guardConfig(idp, origin, {
    revocation: { path: "/revocations/snapshot", delta_path: "/revocations/delta" },
    top: { default_route: { introspection: "never" } },
  });
  // guardConfig's test timings out: the product's defaults in.
  for (const key of ["refresh_interval_secs", "max_staleness_secs", "timeout_ms"]) delete config.revocation[key];
  Object.assign(config.revocation, revocation);
  return config;
}

/** Starts every part. `gateways` x `workers` worker VMs of the filter, plus the edge worker if
 * `edge`. Resolves once every enforcement point allows a fresh token. */
export async function startChain({ gateways = 2, workers = 4, edge = true, revocation = {} } = {}) {
  const chain = { proxies: [], worker: null };
  chain.stop = async () => {
    await chain.worker?.dispose();
    await Promise.allSettled([
      ...chain.proxies.map((p) => p.stop()),
      chain.idp?.stop(),
      chain.origin?.stop(),
      chain.backend?.stop(),
      chain.transmitterJwks?.stop(),
    ]);
    chain.origin?.cleanup();
  };
  try {
    chain.idp = await new Idp().start();
    chain.transmitter = await keyPair("chain-tx");
    const jwk = chain.transmitter.publicJwk;
    chain.transmitterJwks = await new Loopback((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [jwk] }));
    }).start();
    chain.origin = await new OriginService({
      backchannel_logout: [{
        name: "oidc-provider", issuer: chain.idp.url, jwks_uri: `${chain.idp.url}/jwks`,
        client_ids: ["web"], token_lifetime_secs: 3600,
      }],
      ssf: [{
        name: "transmitter", issuer: SSF_ISSUER, jwks_uri: `${chain.transmitterJwks.url}/jwks`,
        audience: SSF_AUDIENCE, api_token_sha256: createHash("sha256").update(SSF_TOKEN).digest("hex"),
      }],
    }).start();
    chain.idp.enableLogin({ web: `${chain.origin.url}/v1/logout/backchannel` });
    chain.backend = await startBackend();
    const config = policy(chain.idp, chain.origin, revocation);
    for (let i = 0; i < gateways; i++) {
      chain.proxies.push(new TestHostGateway({
        config, backend: chain.backend.url, workers,
        upstreams: { idp: chain.idp.url, origin: chain.origin.url },
      }));
    }
    await Promise.all(chain.proxies.map((p) => p.start()));
    if (edge) {
      chain.worker = await startWorker({ config, idp: chain.idp, origin: chain.origin, backend: chain.backend });
    }
    const probe = await chain.idp.signIn({ user: "warm-up" });
    const deadline = performance.now() + 60_000;
    while (!(await statuses(chain, probe.accessToken)).every((s) => s === 200)) {
      if (performance.now() > deadline) throw new Error("the enforcement points did not become ready within 60 s");
      await sleep(100);
    }
    return chain;
  } catch (error) {
    await chain.stop();
    throw error;
  }
}

/** One answer per enforcement point: every worker VM of every gateway (requests are spread
 * round-robin, one at a time), then the edge worker. */
export async function statuses(chain, token) {
  const all = [];
  for (const proxy of chain.proxies) all.push(...(await proxy.everyWorker("/orders", token)));
  if (chain.worker) all.push((await chain.worker.get("/orders", token)).status);
  return all;
}

/** The names `statuses` answers for, in its order. */
export function pointNames(chain) {
  const names = [];
  chain.proxies.forEach((p, g) => {
    for (let w = 0; w < p.workers; w++) names.push(`gateway ${g + 1} worker ${w}`);
  });
  if (chain.worker) names.push("workerd isolate");
  return names;
}

/** Probes the tokens of `pending` until every enforcement point denies each; records in each
 * entry `denials`: the ms from its `startedAt` to the first denial at each point (`null`: still
 * allowed after `timeoutMs`). One probe loop for all tokens, so revocations close together are
 * measured at once; `pending` may grow while this runs, until `launching()` turns false. */
export async function firstDenials(chain, pending, { timeoutMs = 30_000, everyMs = 10, launching = () => false } = {}) {
  const points = pointNames(chain).length;
  const open = () =>
    pending.filter((p) => {
      p.denials ??= new Array(points).fill(null);
      return p.denials.includes(null) && performance.now() - p.startedAt < timeoutMs;
    });
  for (let left = open(); left.length || launching(); left = open()) {
    for (const p of left) {
      const answers = await statuses(chain, p.token);
      const now = performance.now();
      answers.forEach((status, i) => {
        if (status !== 200 && p.denials[i] === null) {
          if (status !== 401) throw new Error(`${pointNames(chain)[i]}: ${status} where 200 or 401 was expected`);
          p.denials[i] = now - p.startedAt;
        }
      });
    }
    await sleep(everyMs);
  }
  return pending;
}

/** Signs a user in, checks every point allows the token, signs out at the provider (whose
 * back-channel logout call reaches the origin before the provider answers). Returns the
 * pending measurement `{token, sid, startedAt}` (started when the sign-out was submitted). */
export async function logout(chain, user) {
  const session = await chain.idp.signIn({ user });
  await allowedEverywhere(chain, session.accessToken);
  const startedAt = performance.now();
  const calls = await chain.idp.signOut(session);
  if (!calls.length || !calls.every((c) => c.ok)) {
    throw new Error(`the back-channel logout call failed: ${JSON.stringify(calls)}`);
  }
  return { token: session.accessToken, sid: session.sid, startedAt };
}

/** Signs a user in, then the transmitter pushes a CAEP session-revoked SET for the session
 * (RFC 8935). Returns the pending measurement, started when the push was sent. */
export async function ssfSessionRevoked(chain, user) {
  const session = await chain.idp.signIn({ user });
  await allowedEverywhere(chain, session.accessToken);
  const now = Math.floor(Date.now() / 1000);
  const set = await new SignJWT({
    iss: SSF_ISSUER, aud: SSF_AUDIENCE, iat: now, jti: randomUUID(),
    // RFC 9493 complex subject: the session (an `opaque` subject alone names a user).
    sub_id: { format: "complex", session: { format: "opaque", id: session.sid } },
    events: { [SESSION_REVOKED]: { event_timestamp: now } },
  }).setProtectedHeader({ alg: "ES256", kid: chain.transmitter.kid, typ: "secevent+jwt" })
    .sign(chain.transmitter.privateKey);
  const startedAt = performance.now();
  const response = await fetch(new URL("/v1/ssf/push", chain.origin.url), {
    method: "POST",
    headers: { "content-type": "application/secevent+jwt", authorization: `Bearer ${SSF_TOKEN}` },
    body: set,
  });
  if (response.status !== 202) throw new Error(`SSF push: ${response.status} ${await response.text()}`);
  return { token: session.accessToken, sid: session.sid, startedAt };
}

async function allowedEverywhere(chain, token) {
  const answers = await statuses(chain, token);
  if (!answers.every((s) => s === 200)) throw new Error(`a fresh token was not allowed everywhere: ${answers}`);
}

async function keyPair(kid) {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

/** p50 / p99 / max of `values` (ms), as text in seconds. */
export function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  return `p50 ${s(at(0.5))}, p99 ${s(at(0.99))}, max ${s(sorted[sorted.length - 1])} (n=${sorted.length})`;
}
