// The shared decision cases (tests/cases/decisions.json) in real workerd (Miniflare) and in
// Node's V8, against the same wasm. Deno runs them in test/cases.deno.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { initRevguard } from "../revguard.js";
import { runAll } from "./run-cases.js";
import { workerRoot } from "./support.mjs";

const casesFile = fileURLToPath(new URL("../../../tests/cases/decisions.json", import.meta.url));

function check(results) {
  assert.ok(results.length >= 20, "the file holds at least 20 cases");
  for (const r of results) assert.deepEqual(r.got, r.expect, r.name);
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
    const response = await mf.dispatchFetch("http://cases.test/", {
      method: "POST",
      body: await readFile(casesFile),
    });
    assert.equal(response.status, 200);
    const results = await response.json();
    check(results);
    console.log(`workerd: ${results.length}/${results.length} decision cases match`);
  } finally {
    await mf.dispose();
  }
});

test("decision cases in Node's V8 give the recorded answers", async () => {
  initRevguard(await readFile(new URL("../pkg/revguard_bg.wasm", import.meta.url)));
  check(runAll(JSON.parse(await readFile(casesFile, "utf8"))));
});
