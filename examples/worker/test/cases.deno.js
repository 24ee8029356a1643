// The shared decision cases (every tests/cases/*.json) in Deno:
// `deno run --allow-read test/cases.deno.js`. Exit 1 on a mismatch.
import { initRevguard } from "../revguard.js";
import { caseFileNames, minimumCases, runAll } from "./run-cases.js";

const here = new URL(".", import.meta.url);
const casesDir = new URL("../../../tests/cases/", here);
initRevguard(await Deno.readFile(new URL("../pkg/revguard_bg.wasm", here)));
const listing = [];
for await (const entry of Deno.readDir(casesDir)) if (entry.isFile) listing.push(entry.name);
let failures = 0;
for (const name of caseFileNames(listing)) {
  const file = JSON.parse(await Deno.readTextFile(new URL(name, casesDir)));
  const results = runAll(file);
  const failed = results.filter((r) => !r.ok);
  for (const r of failed) {
    console.error(`FAIL ${name}: ${r.name}\n  got:    ${JSON.stringify(r.got)}\n  expect: ${JSON.stringify(r.expect)}`);
  }
  console.log(`deno ${Deno.version.deno}: ${name}: ${results.length - failed.length}/${results.length} decision cases match`);
  if (results.length < minimumCases(name)) {
    console.error(`${name} holds ${results.length} cases, fewer than ${minimumCases(name)}`);
    failures++;
  }
  failures += failed.length;
}
if (failures > 0) Deno.exit(1);
