/**
 * The private directory where, with `--metrics` and `--workers`, each worker
 * serves its metrics on a unix socket (`./server.ts`). Apart from the server
 * so that the CLI can make and remove it without loading prom-client.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * Makes the directory for the workers' metrics sockets: private (0700),
 * named after the supervisor's pid. {@link removeWorkersDir} removes it.
 */
export function createWorkersDir(pid: number): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `websockify-metrics-${pid}-`));
}

/** Removes what {@link createWorkersDir} made, sockets included. */
export function removeWorkersDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
