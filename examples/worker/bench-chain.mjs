// The propagation campaign with the identity provider in the loop: N users sign in at
// oidc-provider and out again (its back-channel logout call reaches `revguard origin serve`),
// or N Shared Signals session-revoked SETs are pushed, one every --spacing-ms (they overlap in
// time); each is timed from its sign-out (or push) to the moment every worker VM of two
// gateways (`revguard-test-host serve`, the real filter) and the workerd isolate deny its token.
//
//   node bench-chain.mjs [--feed logout|ssf] [--count 200] [--spacing-ms 400]
//                        [--hold-secs N] [--refresh-secs N] [--workers 4] [--no-edge]
//
// Needs `cargo build --bin revguard -p revguard-test-host` and the edge build (`./build`).
// Revocation settings are the plugin's defaults unless given. Prints p50 / p99 / max of the
// slowest point per revocation, and per kind of point.
import { parseArgs } from "node:util";
import { firstDenials, logout, pointNames, ssfSessionRevoked, startChain, summary } from "./test/chain.mjs";
import { sleep } from "./test/support.mjs";

const { values: args } = parseArgs({
  options: {
    feed: { type: "string", default: "logout" },
    count: { type: "string", default: "200" },
    "spacing-ms": { type: "string", default: "400" },
    "hold-secs": { type: "string" },
    "refresh-secs": { type: "string" },
    workers: { type: "string", default: "4" },
    "no-edge": { type: "boolean", default: false },
  },
});
const trigger = { logout, ssf: ssfSessionRevoked }[args.feed];
if (!trigger) throw new Error(`--feed ${args.feed}: logout or ssf`);
const count = Number(args.count);
const spacing = Number(args["spacing-ms"]);
const revocation = {};
if (args["hold-secs"] !== undefined) revocation.hold_secs = Number(args["hold-secs"]);
if (args["refresh-secs"] !== undefined) revocation.refresh_interval_secs = Number(args["refresh-secs"]);

const chain = await startChain({ gateways: 2, workers: Number(args.workers), edge: !args["no-edge"], revocation });
const names = pointNames(chain);
console.log(`chain ready: ${names.length} enforcement points; feed ${args.feed}; revocation settings ${JSON.stringify(revocation)} (else defaults)`);
try {
  const pending = [];
  let launching = true;
  const started = performance.now();
  const launcher = (async () => {
    try {
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        pending.push(await trigger(chain, `bench-${i}`));
        if ((i + 1) % 25 === 0) console.error(`  ${i + 1} revocations sent`);
        await sleep(Math.max(0, spacing - (performance.now() - t0)));
      }
    } finally {
      launching = false;
    }
  })();
  await firstDenials(chain, pending, { launching: () => launching, timeoutMs: 60_000 });
  await launcher;
  const seconds = (performance.now() - started) / 1000;
  const missed = pending.filter((p) => p.denials.includes(null));
  const slowest = pending.filter((p) => !p.denials.includes(null)).map((p) => Math.max(...p.denials));
  console.log(`${args.feed} -> denial at every point, ${pending.length} revocations in ${seconds.toFixed(0)} s: ${summary(slowest)}`);
  const gatewayWorkers = names.map((n, i) => (n.startsWith("gateway") ? i : -1)).filter((i) => i >= 0);
  console.log(`  gateways only (${gatewayWorkers.length} worker VMs): ${summary(pending.map((p) => Math.max(...gatewayWorkers.map((i) => p.denials[i] ?? Infinity))))}`);
  if (chain.worker) console.log(`  workerd isolate: ${summary(pending.map((p) => p.denials[names.length - 1] ?? Infinity))}`);
  if (missed.length) {
    console.log(`  ${missed.length} revocations not denied everywhere within 60 s`);
    process.exitCode = 1;
  }
} finally {
  await chain.stop();
}
