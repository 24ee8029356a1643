// The shared decision cases in Deno: `deno run --allow-read test/cases.deno.js`. Exit 1 on a
// mismatch.
import { initRevguard } from "../revguard.js";
import { runAll } from "./run-cases.js";

const here = new URL(".", import.meta.url);
initRevguard(await Deno.readFile(new URL("../pkg/revguard_bg.wasm", here)));
const file = JSON.parse(await Deno.readTextFile(new URL("../../../tests/cases/decisions.json", here)));
const results = runAll(file);
const failed = results.filter((r) => !r.ok);
for (const r of failed) {
  console.error(`FAIL ${r.name}\n  got:    ${JSON.stringify(r.got)}\n  expect: ${JSON.stringify(r.expect)}`);
}
console.log(`deno ${Deno.version.deno}: ${results.length - failed.length}/${results.length} decision cases match`);
if (failed.length > 0 || results.length < 20) Deno.exit(1);
