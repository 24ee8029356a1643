// The Deno entry (deno.ts) end to end: the same worker module served by Deno.serve, with the
// real OAuth server, origin and backend.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { Idp, Origin, claimsOf, guardConfig, startBackend, until, workerRoot } from "./support.mjs";

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

test("deno.ts: a JWT is allowed with identity headers; a delta revocation denies it", async (t) => {
  const idp = await new Idp().start();
  const origin = await new Origin().start();
  origin.publishSnapshot();
  const backend = await startBackend();
  const port = await freePort();
  const deno = spawn(join(workerRoot, "node_modules/.bin/deno"), ["run", "--allow-net", "--allow-read", "--allow-env", "deno.ts"], {
    cwd: workerRoot,
    env: {
      ...process.env,
      DENO_DIR: process.env.DENO_DIR ?? join(workerRoot, ".deno"),
      DENO_NO_UPDATE_CHECK: "1",
      PORT: String(port),
      REVGUARD_CONFIG: JSON.stringify(guardConfig(idp, origin)),
      REVGUARD_UPSTREAMS: JSON.stringify({ idp: idp.url, origin: origin.url }),
      REVGUARD_BACKEND: backend.url,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(async () => {
    deno.kill();
    await Promise.allSettled([idp.stop(), origin.stop(), backend.stop()]);
    origin.cleanup();
  });
  await new Promise((resolve, reject) => {
    deno.stdout.on("data", (chunk) => String(chunk).includes("revguard.listening") && resolve());
    deno.on("exit", (code) => reject(new Error(`deno exited with ${code}`)));
  });

  const get = async (token) => {
    const r = await fetch(`http://127.0.0.1:${port}/orders`, { headers: { authorization: `Bearer ${token}` } });
    return { status: r.status, json: await r.json() };
  };
  const jwt = await idp.issueJwt();
  const allowed = await get(jwt);
  assert.equal(allowed.status, 200);
  assert.equal(allowed.json.headers["x-auth-subject"], "app");

  origin.revokeByDelta({ jti: claimsOf(jwt).jti });
  const { result } = await until(() => get(jwt), (r) => r.status !== 200);
  assert.equal(result.status, 401);
  assert.equal(result.json.error, "revoked");
});
