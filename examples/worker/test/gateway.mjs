// The proxy-wasm filter as a real gateway process, for chain tests that put the edge build and
// the proxy builds behind one origin: `revguard-test-host serve` runs the real filter `.wasm`
// in several worker VMs (Envoy's model: one VM per worker thread, shared data between them),
// spreads requests round-robin, and maps the policy's upstream names to loopback URLs.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./support.mjs";

/** The test host's binary (`cargo build -p revguard-test-host` puts it there). */
export function testHostBin() {
  const bin =
    process.env.REVGUARD_TEST_HOST_BIN ??
    join(process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target"), "debug", "revguard-test-host");
  if (!existsSync(bin)) throw new Error(`no test host at ${bin}: run cargo build -p revguard-test-host`);
  return bin;
}

export class TestHostGateway {
  /** `config`: the plugin policy; `upstreams`: policy upstream name -> loopback URL. */
  constructor({ config, backend, upstreams, workers = 4, profile = "envoy" }) {
    this.dir = mkdtempSync(join(tmpdir(), "revguard-gateway-"));
    this.configPath = join(this.dir, "policy.json");
    writeFileSync(this.configPath, JSON.stringify(config));
    this.args = [
      "serve", "--config", this.configPath, "--backend", backend, "--workers", String(workers),
      "--profile", profile, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
      ...Object.entries(upstreams).flatMap(([name, url]) => ["--upstream", `${name}=${url}`]),
    ];
    this.workers = workers;
    this.logs = "";
    this.sent = 0; // requests sent so far (the gateway's round-robin position)
    this.queue = Promise.resolve(); // the last queued job: the next one waits for it
  }

  /** Starts the process; resolves once it prints the addresses it listens on. */
  start() {
    this.child = spawn(testHostBin(), this.args, { stdio: ["ignore", "inherit", "pipe"] });
    return new Promise((resolve, reject) => {
      // The module is compiled by cranelift first: allow for a slow debug build.
      const timer = setTimeout(() => reject(new Error(`the gateway did not start within 60 s:\n${this.logs}`)), 60_000);
      this.child.once("exit", (code) => reject(new Error(`the gateway exited (${code}):\n${this.logs}`)));
      this.child.stderr.on("data", (chunk) => {
        this.logs = (this.logs + chunk).slice(-20_000);
        const m = /revguard gateway on (http:\/\/\S+) .*stats on (http:\/\/\S+)\/stats/.exec(this.logs);
        if (m && !this.url) {
          this.url = m[1];
          this.admin = m[2];
          clearTimeout(timer);
          resolve(this);
        }
      });
    });
  }

  /** GET `path` with a bearer token: `{status, json, worker}` (json: the error body, or null;
   * worker: the VM that answered). Requests are sent one at a time: the gateway hands them to
   * its worker VMs round-robin in arrival order (gateway.rs), so counting them names the VM. */
  get(path, token) {
    return this.#exclusive(() => this.#send(path, token));
  }

  /** The status each worker VM answers for `token`, indexed by worker: `workers` requests in a
   * row, nobody else's in between (interleaved callers would each keep hitting the same VMs). */
  everyWorker(path, token) {
    return this.#exclusive(async () => {
      const statuses = new Array(this.workers);
      for (let i = 0; i < this.workers; i++) {
        const { status, worker } = await this.#send(path, token);
        statuses[worker] = status;
      }
      return statuses;
    });
  }

  /** Runs `job` after every job queued before it has finished. */
  #exclusive(job) {
    const result = this.queue.then(job);
    this.queue = result.catch(() => {});
    return result;
  }

  async #send(path, token) {
    const worker = this.sent++ % this.workers;
    const response = await fetch(new URL(path, this.url), { headers: { authorization: `Bearer ${token}` } });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: response.status, json, worker };
  }

  /** The guest metrics (`name: value` lines of `GET /stats`). */
  async stats() {
    const text = await (await fetch(`${this.admin}/stats`)).text();
    return Object.fromEntries(
      text.split("\n").filter(Boolean).map((line) => {
        const i = line.lastIndexOf(": ");
        return [line.slice(0, i), Number(line.slice(i + 2))];
      }),
    );
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      this.child.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
