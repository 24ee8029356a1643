// Per-request cost of the edge build in workerd (Miniflare): the cached path (a token seen
// before: verified-token cache, revocation check, header changes), a request without a token
// (the denial) and a first-seen ES256 token (signature verification). Run: `node bench.mjs`
// after ./build (needs the revguard CLI, as the tests do). Prints medians over batches; each
// batch's cost is its wall time minus an empty batch's, divided by its size. The cheap paths run
// batches ten times larger, one token repeated inside the worker: a batch's fixed cost (the
// request into workerd, about a millisecond and jittery) must not be most of the figure.
//
// `node bench.mjs --against DIR`: also runs the worker in DIR (another checkout's
// examples/worker, built with its ./build), round by round interleaved with this one, so the
// two builds are compared side by side in one run on the same (noisy) machine.
import { execFileSync } from "node:child_process";
import { createSign, generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { revguardBin, workerRoot } from "./test/support.mjs";

const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const CHEAP_BATCH = 10 * BATCH;
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

const against = process.argv.indexOf("--against");
const roots = [["this build", workerRoot]];
if (against > 0) roots.push([`--against ${process.argv[against + 1]}`, process.argv[against + 1]]);

function miniflare(root) {
  return new Miniflare({
    modules: true,
    scriptPath: join(root, "bench-worker.js"),
    modulesRoot: root,
    rootPath: root,
    modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, { type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2025-01-01",
    cf: false,
  });
}

async function post(mf, body) {
  const response = await mf.dispatchFetch("http://bench.test/", { method: "POST", body: JSON.stringify(body) });
  return response.json();
}

/** Wall time of one batch in ms: `tokens`, `repeat` times. */
async function timed(mf, tokens, { headerless = false, repeat = 1 } = {}) {
  const started = process.hrtime.bigint();
  const counts = await post(mf, { tokens, now, headerless, repeat });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, counts };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const perRequest = (batch, empty, size = BATCH) => ((batch.ms - empty) * 1000) / size;

const runs = roots.map(([name, root]) => ({ name, mf: miniflare(root), cached: [], missing: [], first: [] }));
try {
  const seen = es256("cached-user");
  for (const run of runs) {
    await post(run.mf, { setup: { config, snapshot } });
    await timed(run.mf, [seen]); // warm: verified once, cached from now on
  }
  for (let round = 0; round < ROUNDS; round++) {
    const fresh = Array.from({ length: BATCH }, (_, i) => es256(`user-${round}-${i}`));
    for (const run of runs) {
      const empty = (await timed(run.mf, [])).ms;
      const hits = await timed(run.mf, [seen], { repeat: CHEAP_BATCH });
      if (hits.counts.allow !== CHEAP_BATCH) throw new Error(`cached batch: ${JSON.stringify(hits.counts)}`);
      run.cached.push(perRequest(hits, empty, CHEAP_BATCH));
      const missing = await timed(run.mf, [""], { headerless: true, repeat: CHEAP_BATCH });
      if (missing.counts.missing_token !== CHEAP_BATCH) throw new Error(`missing batch: ${JSON.stringify(missing.counts)}`);
      run.missing.push(perRequest(missing, empty, CHEAP_BATCH));
      const firsts = await timed(run.mf, fresh);
      // A rare Bloom false positive (rate 0.001) is denied `revoked`: no introspection configured.
      if ((firsts.counts.allow ?? 0) < BATCH * 0.98) throw new Error(`first-seen batch: ${JSON.stringify(firsts.counts)}`);
      run.first.push(perRequest(firsts, empty));
    }
  }
  console.log(`revguard edge build in workerd (miniflare ${JSON.parse(readFileSync(join(workerRoot, "node_modules/miniflare/package.json"))).version}), ` +
    `${ROUNDS} rounds x ${BATCH} requests (${CHEAP_BATCH} for the cheap paths), snapshot of ${REVOKED} revoked ids`);
  for (const run of runs) {
    const [c, m, f] = [median(run.cached), median(run.missing), median(run.first)];
    console.log(`${run.name}:`);
    console.log(`  cached path (token seen before):     median ${c.toFixed(1)} us/request`);
    console.log(`  no token (missing_token denial):     median ${m.toFixed(1)} us/request`);
    console.log(`  first-seen ES256 token (verify):     median ${f.toFixed(1)} us/request (${(f / c).toFixed(0)}x)`);
  }
  if (runs.length === 2) {
    const ratio = (key) => (median(runs[0][key]) / median(runs[1][key])).toFixed(3);
    console.log(`this build / --against: cached ${ratio("cached")}x, no token ${ratio("missing")}x, first-seen ${ratio("first")}x`);
  }
} finally {
  for (const run of runs) await run.mf.dispose();
}
