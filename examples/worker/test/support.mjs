// Shared test helpers: paths, the revguard CLI, loopback servers, Miniflare for the worker.
import { fileURLToPath } from "node:url";

export const workerRoot = fileURLToPath(new URL("..", import.meta.url));
export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));
