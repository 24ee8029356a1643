// The shared decision cases (every tests/cases/*.json) in real workerd (Miniflare) and in Node's
// V8, against the same wasm. Deno runs them in test/cases.deno.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { initRevguard } from "../revguard.js";
import { caseFileNames, minimumCases, runAll } from "./run-cases.js";
import { workerRoot } from "./support.mjs";

const casesDir = new URL("../../../tests/cases/", import.meta.url);
const caseFiles = caseFileNames(await readdir(casesDir)).map((name) => ({
  name,
  path: fileURLToPath(new URL(name, casesDir)),
}));

function check(name, results) {
  assert.ok(results.length >= minimumCases(name), `${name} holds at least ${minimumCases(name)} cases`);
  for (const r of results) assert.deepEqual(r.got, r.expect, `${name}: ${r.name}`);
}

test("decision cases in workerd give the recorded answers", async () => {
  const mf = new Miniflare({
    modules: true,
    scriptPath: "test/cases-worker.js",
    modulesRoot: workerRoot,
    rootPath: workerRoot,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-01-01",
    cf: false,
  });
  try {
    for (const { name, path } of caseFiles) {
      const response = await mf.dispatchFetch("http://cases.test/", {
        method: "POST",
        body: await readFile(path),
      });
      assert.equal(response.status, 200);
      const results = await response.json();
      check(name, results);
      console.log(`workerd: ${name}: ${results.length}/${results.length} decision cases match`);
    }
  } finally {
    await mf.dispose();
  }
});

test("decision cases in Node's V8 give the recorded answers", async () => {
  initRevguard(await readFile(new URL("../pkg/revguard_bg.wasm", import.meta.url)));
  for (const { name, path } of caseFiles) {
    check(name, runAll(JSON.parse(await readFile(path, "utf8"))));
  }
});
