// Runs the shared decision cases (every tests/cases/*.json) in real workerd (Miniflare): the
// worker `cases-worker.js` (this directory, or the copy in the npm package) loaded from `root`,
// one POST per cases file. Used by cases.test.mjs (this checkout) and package.test.mjs (the
// packed tarball, installed into an empty project).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { caseFileNames } from "./run-cases.js";

/** Every shared cases file of this repository: [{name, path}], decisions.json among them. */
export async function sharedCaseFiles() {
  const dir = fileURLToPath(new URL("../../../tests/cases/", import.meta.url));
  return caseFileNames(await readdir(dir)).map((name) => ({ name, path: join(dir, name) }));
}

/** Runs each of `caseFiles` through `script` (relative to `root`, where every module it imports
 * must live) in workerd; calls `check(name, results)` per file (results as runAll returns). */
export async function runCasesInWorkerd({ root, script, caseFiles, check }) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: join(root, script),
    modulesRoot: root,
    rootPath: root,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-01-01",
    cf: false,
  });
  try {
    for (const { name, path } of caseFiles) {
      const response = await mf.dispatchFetch("http://cases.test/", { method: "POST", body: await readFile(path) });
      if (response.status !== 200) throw new Error(`${name}: the worker answered ${response.status}`);
      check(name, await response.json());
    }
  } finally {
    await mf.dispose();
  }
}
