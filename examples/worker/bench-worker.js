// The benchmark's workerd side (bench.mjs drives it): one engine per isolate, and batches of
// decisions timed from outside, since workerd's clocks do not advance during pure computation.
import wasm from "./pkg/revguard_bg.wasm";
import { Engine, initRevguard } from "./revguard.js";

let engine = null;

export default {
  async fetch(request) {
    const input = await request.json();
    if (input.setup) {
      initRevguard(wasm);
      engine?.free();
      engine = new Engine(input.setup.config);
      engine.loadSnapshot(Uint8Array.from(atob(input.setup.snapshot), (c) => c.charCodeAt(0)));
      return Response.json({ ok: true });
    }
    // A batch: decide each request (the token list `repeat` times, so a batch of one token seen
    // before is not a megabyte of JSON to parse); count the outcomes so nothing is optimised away.
    const counts = {};
    for (let r = 0; r < (input.repeat ?? 1); r++) {
      for (const token of input.tokens) {
        const d = engine.decide({
          method: "GET",
          url: "/orders",
          headers: input.headerless ? [] : [["authorization", `Bearer ${token}`]],
          now: input.now,
        });
        const key = d.decision === "deny" ? d.reason : d.decision;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }
    return Response.json(counts);
  },
};
