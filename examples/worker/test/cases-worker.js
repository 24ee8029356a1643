// A test worker for workerd: POST one cases file (tests/cases/*.json), get every case's result
// back.
import wasm from "../pkg/revguard_bg.wasm";
import { initRevguard } from "../revguard.js";
import { runAll } from "./run-cases.js";

export default {
  async fetch(request) {
    initRevguard(wasm);
    const file = await request.json();
    return Response.json(runAll(file));
  },
};
