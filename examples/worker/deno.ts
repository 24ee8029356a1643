// The Deno entry: the same worker module as on Cloudflare, served with Deno.serve.
//
//   REVGUARD_CONFIG_FILE=policy.json REVGUARD_UPSTREAMS='{"idp":"https://idp.example.com",
//   "origin":"https://revocations.example.com"}' REVGUARD_BACKEND=http://127.0.0.1:3000 \
//   deno run --allow-net --allow-read --allow-env deno.ts
//
// REVGUARD_CONFIG (the JSON text) may replace REVGUARD_CONFIG_FILE. PORT (default 8000) and
// HOSTNAME (default 127.0.0.1) say where to listen.
import { createRevguard } from "./revguard-worker.js";

const env = (name: string): string | undefined => Deno.env.get(name);
const configFile = env("REVGUARD_CONFIG_FILE");
const config = configFile ? await Deno.readTextFile(configFile) : env("REVGUARD_CONFIG");
if (!config) {
  console.error("revguard: set REVGUARD_CONFIG_FILE or REVGUARD_CONFIG");
  Deno.exit(2);
}

const guard = createRevguard({
  wasm: await Deno.readFile(new URL("./pkg/revguard_bg.wasm", import.meta.url)),
  config,
  upstreams: JSON.parse(env("REVGUARD_UPSTREAMS") ?? "{}"),
  backend: env("REVGUARD_BACKEND"),
});

Deno.serve(
  {
    port: Number(env("PORT") ?? 8000),
    hostname: env("HOSTNAME") ?? "127.0.0.1",
    onListen: ({ hostname, port }) => console.log(JSON.stringify({ event: "revguard.listening", hostname, port })),
  },
  (request: Request) => guard.handle(request),
);
