// The shared decision cases (every tests/cases/*.json) in real workerd (Miniflare) and in Node's
// V8, against the same wasm. Deno runs them in test/cases.deno.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { initRevguard } from "../revguard.js";
import { minimumCases, runAll } from "./run-cases.js";
import { workerRoot } from "./support.mjs";
import { runCasesInWorkerd, sharedCaseFiles } from "./workerd-cases.mjs";

const caseFiles = await sharedCaseFiles();

function check(name, results) {
  assert.ok(results.length >= minimumCases(name), `${name} holds at least ${minimumCases(name)} cases`);
  for (const r of results) assert.deepEqual(r.got, r.expect, `${name}: ${r.name}`);
}

test("decision cases in workerd give the recorded answers", async () => {
  await runCasesInWorkerd({
    root: workerRoot,
    script: "test/cases-worker.js",
    caseFiles,
    check: (name, results) => {
      check(name, results);
      console.log(`workerd: ${name}: ${results.length}/${results.length} decision cases match`);
    },
  });
});

test("decision cases in Node's V8 give the recorded answers", async () => {
  initRevguard(await readFile(new URL("../pkg/revguard_bg.wasm", import.meta.url)));
  for (const { name, path } of caseFiles) {
    check(name, runAll(JSON.parse(await readFile(path, "utf8"))));
  }
});
