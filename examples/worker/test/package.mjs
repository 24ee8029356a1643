// The npm tarball as a user gets it: `node test/package.mjs revguard-worker-<v>.tgz` installs it
// into an empty temporary project (`npm install <tgz>`, nothing else), then
//  1. from that project's own module, imports the package by name (its `exports`) and runs the
//     shared decision cases in Node with the packaged runner and wasm;
//  2. runs the same cases in workerd (Miniflare), the worker and every module it imports loaded
//     from the project's node_modules/revguard-worker.
// Exit status 1 on any mismatch or a missing file. .ci/release runs it on the tarball it packs.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { minimumCases } from "./run-cases.js";
import { runCasesInWorkerd, sharedCaseFiles } from "./workerd-cases.mjs";

const tarball = process.argv[2];
if (!tarball || !existsSync(tarball)) {
  console.error("usage: node test/package.mjs <revguard-worker-<version>.tgz>");
  process.exit(2);
}

// What a consumer's module does: import the package by name, run the cases, print a summary.
const consumer = `
import { readFileSync } from "node:fs";
import { createRevguard } from "revguard-worker";
import { initRevguard } from "revguard-worker/revguard.js";
import { runAll, minimumCases } from "revguard-worker/run-cases.js";
if (typeof createRevguard !== "function") throw new Error("no createRevguard export");
initRevguard(readFileSync(new URL(import.meta.resolve("revguard-worker/revguard_bg.wasm"))));
let failed = 0;
for (const path of process.argv.slice(2)) {
  const name = path.split("/").pop();
  const results = runAll(JSON.parse(readFileSync(path, "utf8")));
  const bad = results.filter((r) => !r.ok);
  if (results.length < minimumCases(name)) bad.push({ name: "too few cases" });
  for (const r of bad) console.error("FAIL " + name + ": " + r.name);
  failed += bad.length;
  console.log("node " + process.version + " (installed package): " + name + ": " + (results.length - bad.length) + "/" + results.length + " decision cases match");
}
process.exit(failed > 0 ? 1 : 0);
`;

const project = mkdtempSync(join(tmpdir(), "revguard-npm-"));
try {
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  writeFileSync(join(project, "consumer.mjs"), consumer);
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", resolve(tarball)], {
    cwd: project,
    stdio: "inherit",
  });
  const installed = join(project, "node_modules", "revguard-worker");
  const meta = JSON.parse(readFileSync(join(installed, "package.json"), "utf8"));
  console.log(`installed ${meta.name}@${meta.version} into an empty project (${project})`);
  const caseFiles = await sharedCaseFiles();

  execFileSync(process.execPath, ["consumer.mjs", ...caseFiles.map((f) => f.path)], { cwd: project, stdio: "inherit" });

  await runCasesInWorkerd({
    root: installed,
    script: "test/cases-worker.js",
    caseFiles,
    check: (name, results) => {
      assert.ok(results.length >= minimumCases(name), `${name} holds at least ${minimumCases(name)} cases`);
      for (const r of results) assert.deepEqual(r.got, r.expect, `${name}: ${r.name}`);
      console.log(`workerd (installed package): ${name}: ${results.length}/${results.length} decision cases match`);
    },
  });
} finally {
  rmSync(project, { recursive: true, force: true });
}
