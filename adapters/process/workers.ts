/**
 * `--workers=N`: N processes serve one port, to use more than one core.
 * Node 20 has no SO_REUSEPORT, so there `node:cluster` forks the workers and
 * shares the listening socket; Deno and Bun honour `reusePort`, so there the
 * first process listens with it and starts N - 1 copies of itself that do
 * the same (Deno has no cluster).
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import cluster from "node:cluster";
import net from "node:net";
import process from "node:process";
import { RUNTIME } from "../runtime.ts";
import { PARENT_POLL_MS, WORKER_RESTART_DELAY_MS } from "../../lib/limits.ts";
import type { Logger } from "../../lib/log.ts";
import { selfCommand } from "./daemon.ts";
import { resolveHost } from "../server/listen.ts";

/** Set in every worker: its number, from 1. */
export const WORKER_ENV = "WEBSOCKIFY_WORKER";
/** Set in reusePort workers: the port the first process bound. */
export const WORKER_PORT_ENV = "WEBSOCKIFY_WORKER_PORT";
/** Set in workers with `--metrics`: the directory for their metrics sockets. */
export const METRICS_DIR_ENV = "WEBSOCKIFY_METRICS_DIR";

/** How this runtime shares a port between processes. */
export function workerMode(): "cluster" | "reuseport" {
  return RUNTIME === "node" ? "cluster" : "reuseport";
}

/** This process's worker number, 0 when it is not a worker. */
export function workerNumber(): number {
  return Number(process.env[WORKER_ENV] ?? 0);
}

/**
 * This process's number among the serving processes: the first process in
 * `reuseport` mode serves as worker 1; 0 without `--workers` and in the
 * `cluster` primary, which serves nothing.
 */
export function workerIndex(n: number): number {
  const k = workerNumber();
  if (k > 0 || n <= 1) return k;
  return workerMode() === "reuseport" ? 1 : 0;
}

/**
 * In a worker: exits once the supervisor is gone (killed, even with SIGKILL),
 * so that no orphan keeps serving the port with stale settings. The kernel
 * gives an orphan a new parent, which every runtime's `process.ppid` shows.
 */
export function exitWithParent(): void {
  if (workerNumber() === 0) return;
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && process.exit(1), PARENT_POLL_MS).unref();
}

/**
 * Binds host:port without SO_REUSEPORT and lets go again; fails with
 * EADDRINUSE while any other socket holds the port, even one that shares it
 * (a reusePort listen would join that one). Resolves with the port, the
 * kernel's choice for 0.
 */
export async function probePort(
  hostname: string,
  port: number,
  preferIpv6 = false,
): Promise<number> {
  const host = await resolveHost(hostname, preferIpv6);
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  const bound = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return bound;
}

/** A group of worker processes. */
export interface Workers {
  /**
   * Sends `signal` to every worker (SIGTERM drains with `--drain-timeout`,
   * SIGINT closes at once), never restarts them again, and waits for them.
   */
  stop(signal?: "SIGTERM" | "SIGINT"): Promise<void>;
  /** Sends SIGHUP to every live worker: each reloads itself. */
  reload(): void;
}

/**
 * Starts and supervises workers; a worker that dies is started again after
 * a second. `cluster`: call in the primary, which serves nothing itself.
 * `reuseport`: call in the first process once it listens on `port`.
 * `extraEnv` is added to each worker's environment.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { SILENT_LOGGER } from "../../lib/log.ts";
 * import { startWorkers } from "./workers.ts";
 *
 * // reuseport: in the first process, once it listens on `port`
 * const start = (port: number) => startWorkers(2, process.argv.slice(2), SILENT_LOGGER, port);
 * ```
 */
export function startWorkers(
  n: number,
  argv: string[],
  log: Logger,
  port = 0,
  extraEnv: Record<string, string> = {},
): Workers {
  const mode = workerMode();
  const live = new Map<number, ChildProcess>();
  let stopping = false;
  // cluster: workers 1..n; reuseport: this process is worker 1, so 2..n.
  const first = mode === "cluster" ? 1 : 2;
  const start = (k: number) => {
    const env = { ...extraEnv, [WORKER_ENV]: String(k), [WORKER_PORT_ENV]: String(port) };
    const child = mode === "cluster"
      ? cluster.fork(env).process
      : spawn(...selfCommand(argv), { stdio: "inherit", env: { ...process.env, ...env } });
    live.set(k, child);
    log.info(`Worker ${k} of ${n} started (pid ${child.pid})`);
    child.once("exit", (code, signal) => {
      live.delete(k);
      if (stopping) return;
      log.warn(`Worker ${k} exited (${signal ?? code}); restarting it`);
      setTimeout(() => !stopping && start(k), WORKER_RESTART_DELAY_MS);
    });
  };
  for (let k = first; k <= n; k++) start(k);
  return {
    async stop(signal = "SIGTERM") {
      stopping = true;
      const exits = [...live.values()].map((child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
          child.once("exit", resolve);
          child.kill(signal);
        })
      );
      await Promise.all(exits);
    },
    reload() {
      for (const child of live.values()) {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGHUP");
      }
    },
  };
}

/** True in the `cluster` primary, which supervises instead of serving. */
export function isClusterPrimary(n: number): boolean {
  return n > 1 && workerMode() === "cluster" && cluster.isPrimary;
}
