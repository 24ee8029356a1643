// The Cloudflare Workers entry (wrangler.toml `main`): configuration from the environment,
// one revguard per isolate. See README.md for the variables.
import wasm from "./pkg/revguard_bg.wasm";
import { createRevguard, notReadyResponse } from "./revguard-worker.js";

let guard = null;

/** Text or an object (wrangler `[vars]` may hold either). */
function json(value) {
  return typeof value === "string" ? JSON.parse(value) : value;
}

export default {
  async fetch(request, env, ctx) {
    if (guard == null) {
      try {
        guard = createRevguard({
          wasm,
          config: json(env.REVGUARD_CONFIG),
          upstreams: json(env.REVGUARD_UPSTREAMS ?? "{}"),
          backend: env.REVGUARD_BACKEND || undefined,
        });
      } catch (error) {
        // Never the config itself in the log: it holds the introspection client secret.
        console.log(JSON.stringify({ event: "revguard.not_configured", error: String(error?.message ?? error) }));
        return notReadyResponse(wasm);
      }
    }
    return guard.handle(request, ctx);
  },
};
