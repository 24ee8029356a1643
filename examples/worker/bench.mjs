// Per-request cost of the edge build in workerd (Miniflare): the cached path (a token seen
// before: verified-token cache, revocation check, header changes) and a first-seen ES256 token
// (signature verification). Run: `node bench.mjs` after ./build (needs the revguard CLI, as
// the tests do). Prints medians over batches; each batch's cost is its wall time minus an
// empty batch's, divided by its size.
import { execFileSync } from "node:child_process";
import { createSign, generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { revguardBin, workerRoot } from "./test/support.mjs";

const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const REVOKED = 10_000;
const ISSUER = "https://idp.bench";
const now = Math.floor(Date.now() / 1000);

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...publicKey.export({ format: "jwk" }), kid: "bench", alg: "ES256", use: "sig" };
const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
function es256(sub) {
  const signed = `${b64url({ alg: "ES256", typ: "at+jwt", kid: "bench" })}.${b64url({
    iss: ISSUER, aud: "api", sub, scope: "orders:read", jti: randomUUID(), iat: now - 10, exp: now + 3600,
  })}`;
  const sig = createSign("SHA256").update(signed).sign({ key: privateKey, dsaEncoding: "ieee-p1363" });
  return `${signed}.${sig.toString("base64url")}`;
}

// A snapshot of 10k revoked token ids, built and signed by the revguard CLI.
const dir = mkdtempSync(join(tmpdir(), "revguard-bench-"));
const bin = revguardBin();
execFileSync(bin, ["keygen", "--out", join(dir, "origin")], { stdio: "pipe" });
writeFileSync(join(dir, "revoked.jsonl"), Array.from({ length: REVOKED }, (_, i) => `{"jti":"revoked-${i}"}\n`).join(""));
execFileSync(bin, ["snapshot", "build", "--revocations", join(dir, "revoked.jsonl"), "--generation", "1",
  "--key", join(dir, "origin.key"), "--out", join(dir, "current.snap")], { stdio: "pipe" });
const config = {
  issuers: [{ issuer: ISSUER, audiences: ["api"], algorithms: ["ES256"], required_type: "at+jwt", jwks: { keys: [jwk] } }],
  forward_claims: [{ claim: "sub", header: "x-auth-subject" }, { claim: "scope", header: "x-auth-scope" }],
  revocation: { upstream: "origin", path: "/current.snap", public_keys: [readFileSync(join(dir, "origin.pub"), "utf8").trim()] },
};
const snapshot = readFileSync(join(dir, "current.snap")).toString("base64");
rmSync(dir, { recursive: true, force: true });

const mf = new Miniflare({
  modules: true,
  scriptPath: "bench-worker.js",
  modulesRoot: workerRoot,
  rootPath: workerRoot,
  modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, { type: "CompiledWasm", include: ["**/*.wasm"] }],
  compatibilityDate: "2025-01-01",
  cf: false,
});

async function post(body) {
  const response = await mf.dispatchFetch("http://bench.test/", { method: "POST", body: JSON.stringify(body) });
  return response.json();
}

/** Wall time of one batch in ms. */
async function timed(tokens) {
  const started = process.hrtime.bigint();
  const counts = await post({ tokens, now });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, counts };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  await post({ setup: { config, snapshot } });
  const seen = es256("cached-user");
  await timed([seen]); // warm: verified once, cached from now on
  const cached = [];
  const first = [];
  for (let round = 0; round < ROUNDS; round++) {
    const empty = (await timed([])).ms;
    const hits = await timed(Array(BATCH).fill(seen));
    if (hits.counts.allow !== BATCH) throw new Error(`cached batch: ${JSON.stringify(hits.counts)}`);
    cached.push(((hits.ms - empty) * 1000) / BATCH);
    const fresh = Array.from({ length: BATCH }, (_, i) => es256(`user-${round}-${i}`));
    const firsts = await timed(fresh);
    // A rare Bloom false positive (rate 0.001) is denied `revoked`: no introspection configured.
    if ((firsts.counts.allow ?? 0) < BATCH * 0.98) throw new Error(`first-seen batch: ${JSON.stringify(firsts.counts)}`);
    first.push(((firsts.ms - empty) * 1000) / BATCH);
  }
  const c = median(cached);
  const f = median(first);
  console.log(`revguard edge build in workerd (miniflare ${JSON.parse(readFileSync(join(workerRoot, "node_modules/miniflare/package.json"))).version}), ` +
    `${ROUNDS} rounds x ${BATCH} requests, snapshot of ${REVOKED} revoked ids`);
  console.log(`cached path (token seen before):     median ${c.toFixed(1)} us/request`);
  console.log(`first-seen ES256 token (verify):     median ${f.toFixed(1)} us/request (${(f / c).toFixed(0)}x)`);
} finally {
  await mf.dispose();
}
