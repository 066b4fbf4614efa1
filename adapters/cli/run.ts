/**
 * The `websockify` command as a function: parses arguments, starts the
 * proxy, logs to stderr, reloads on SIGHUP and ends with 0 on SIGINT/SIGTERM
 * after closing sessions with 1001 (on SIGTERM after draining them, with
 * `--drain-timeout`). Every start-up problem is one `websockify: error:`
 * line and a non-zero status. `cli.ts` runs it on this process; tests run
 * it on a host of their own.
 *
 * @module
 */
import path from "node:path";
import { type CliOptions, type CliRun, HELP, parseCliArgs } from "../../lib/cli/args.ts";
import { describeError } from "../../lib/errors.ts";
import { UsageError } from "../../lib/errors.ts";
import { formatAddr } from "../../lib/target.ts";
import type { NetAddr } from "../../lib/types.ts";
import { daemonize, daemonReady, isDaemonChild, writePidFile } from "../process/daemon.ts";
import {
  exitWithParent,
  isClusterPrimary,
  probePort,
  startWorkers,
  workerIndex,
  workerNumber,
  type Workers,
} from "../process/workers.ts";
import { banner, describeListen } from "./banner.ts";
import { CliExit, type CliHost, fail, usageError } from "./host.ts";
import { type CliLogs, openLogs } from "./logs.ts";
import { type HupTargets, reloadOnHup } from "./reload.ts";
import { type Signals, signalsOf } from "./signals.ts";
import { MAX_TIMER_MS, STOP_GRACE_MS } from "../../lib/limits.ts";
import { socketActivated } from "../../lib/process/activation.ts";
import { startServer } from "./startup.ts";
import { metricsListenError, samePortError } from "../../lib/metrics.ts";
import type { serveMetrics } from "../metrics/server.ts";
import { createWorkersDir, removeWorkersDir } from "../metrics/workers_dir.ts";
import { METRICS_DIR_ENV } from "../process/workers.ts";

export type { CliHost, CliSignal } from "./host.ts";
export { processHost } from "./host.ts";

/**
 * Runs the command with `argv` (the arguments after the program name) and
 * resolves with its exit status once it is over; then it has called
 * `host.exit()` with that status, except after `--help`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CliHost, runCli } from "./run.ts";
 *
 * let out = "";
 * const host: CliHost = {
 *   stdout: (text) => void (out += text),
 *   stderr: () => {},
 *   env: {},
 *   cwd: ".",
 *   pid: 1,
 *   exit: () => {},
 *   on: () => {},
 *   off: () => {},
 * };
 * assert.equal(await runCli(["--help"], host), 0);
 * assert.match(out, /^Usage:/);
 * // cli.ts: process.exitCode = await runCli(process.argv.slice(2), processHost());
 * ```
 */
export async function runCli(argv: string[], host: CliHost): Promise<number> {
  const signals = signalsOf(host);
  let status: number;
  try {
    const options = parseOrExit(argv, host);
    if (options.help) {
      host.stdout(`${HELP}\n`);
      return 0;
    }
    status = await run(options, argv, host, signals);
  } catch (error) {
    if (!(error instanceof CliExit)) host.stderr(`websockify: error: ${describeError(error)}\n`);
    status = error instanceof CliExit ? error.status : 1;
  }
  signals.offAll();
  host.exit(status);
  return status;
}

/** Parses `argv`; a usage error ends the run with the usage and 2, as optparse. */
function parseOrExit(argv: string[], host: CliHost): CliOptions {
  try {
    return parseCliArgs(argv, socketActivated(host.env, host.pid));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return usageError(host, error.message);
  }
}

/** Serves until the server closes or a signal stops it; resolves with the status. */
async function run(
  options: CliRun,
  argv: string[],
  host: CliHost,
  signals: Signals,
): Promise<number> {
  const { lifecycle } = options;
  const { metrics } = options;
  if (metrics && metrics.port !== 0 && metrics.port === options.listen?.port) {
    fail(host, samePortError(metrics.port).message, 1);
  }
  if (lifecycle.daemon && !isDaemonChild()) return await daemonize(argv, host.stderr);
  const logs = openLogs(options, host);
  const hup = reloadOnHup(signals, logs);
  const { log } = logs;
  exitWithParent();
  const listenText = describeListen(options);
  // Before the banner and before listening: a second instance stops here.
  if (lifecycle.pidFile !== undefined && workerNumber() === 0) {
    const file = path.resolve(host.cwd, lifecycle.pidFile);
    try {
      writePidFile(file, host.pid);
    } catch (error) {
      fail(host, `Cannot write pid file ${file}: ${describeError(error)}`, 1);
    }
  }
  // Workers share the port with SO_REUSEPORT (or the cluster's one socket), so
  // it must be free first: an old instance's workers would share it too.
  let port: number | undefined;
  if (lifecycle.workers > 1 && workerNumber() === 0) {
    try {
      port = await probePort(options.listen!.hostname, options.listen!.port, options.preferIpv6);
    } catch (error) {
      fail(host, `Cannot listen on ${listenText}: ${describeError(error)}`, 1);
    }
  }
  // Every worker serves its metrics on a socket here, for the process owning the port.
  const metricsDir = metrics && lifecycle.workers > 1 && workerNumber() === 0
    ? createWorkersDir(host.pid)
    : undefined;
  const workerEnv: Record<string, string> = metricsDir ? { [METRICS_DIR_ENV]: metricsDir } : {};
  const removeDir = () => metricsDir && removeWorkersDir(metricsDir);
  if (isClusterPrimary(lifecycle.workers) && workerNumber() === 0) {
    return await superviseCluster(options, argv, host, logs, signals, hup, metricsDir).finally(
      removeDir,
    );
  }
  const started = startServer(options, host, log, port, listenText, metricsDir);
  const { server, settings, wrap } = await started.catch((error) => {
    removeDir();
    throw error;
  });
  hup.server = server;
  return new Promise<number>((resolve) => {
    // --run-once, --timeout and --idle-timeout end the server by themselves.
    let status = 0; // the wrapped program's, with --wrap-mode=exit
    let workers: Workers | undefined;
    let grace: ReturnType<typeof setTimeout> | undefined;
    const giveUp = () => {
      removeDir();
      resolve(status);
    };
    server.closed.then(() => Promise.all([wrap?.stop(), workers?.stop()])).then(() => logs.close())
      .then(() => {
        clearTimeout(grace);
        giveUp();
      });
    let stopping = false;
    let draining = false;
    const stop = (signal: string) => {
      if (stopping) return drainEnds(signal) && stopNow(signal);
      stopping = true;
      const drain = signal === "SIGTERM" ? lifecycle.drainTimeout : 0;
      // Bounded: a session that does not close in time is cut, after the drain window.
      grace = setTimeout(giveUp, graceMs(drain));
      grace.unref();
      if (drain > 0) {
        draining = true;
        log.info(`Got ${signal}`);
        void server.drain(drain);
        workers?.stop("SIGTERM");
        // The wrapped program is the sessions' target: it stops once they have ended.
        return;
      }
      log.info(`Got ${signal}, closing ${server.sessions} session(s)`);
      server.close();
      wrap?.stop();
      workers?.stop("SIGINT");
    };
    /** A second signal during a drain: close what is left at once. */
    const stopNow = (signal: string) => {
      draining = false;
      log.info(`Got ${signal} while draining, closing ${server.sessions} session(s)`);
      clearTimeout(grace);
      grace = setTimeout(giveUp, STOP_GRACE_MS);
      grace.unref();
      server.close();
      wrap?.stop();
      workers?.stop("SIGINT");
    };
    const drainEnds = (signal: string) => draining && secondSignalEndsDrain(signal);
    // Before the banner: whoever reads "Listen on" may signal at once.
    signals.onStop(stop);

    // One banner: the other workers say that they are listening.
    if (workerIndex(lifecycle.workers) <= 1) {
      banner(log, options, settings, server, host.cwd, wrap);
      if (options.traffic) {
        host.stdout("Traffic Legend:\n    } - Client receive\n    { - Target receive\n");
      }
      if (lifecycle.libserver) log.warn("--libserver has no effect: there is one server here");
    } else log.info(`Worker listening on ${formatAddr(server.addr)}`);
    if (server.metricsAddr) log.info(`Metrics on ${metricsUrl(server.metricsAddr)}`);
    if (lifecycle.workers > 1 && workerNumber() === 0) {
      workers = hup.workers = startWorkers(
        lifecycle.workers,
        argv,
        log,
        server.addr.port,
        workerEnv,
      );
    }
    if (isDaemonChild()) daemonReady();
    wrap?.start(server.addr.port);
    wrap?.ended.then((code) => {
      status = code;
      stop("exit of the wrapped command");
    });
  });
}

/**
 * `--workers` on Node: this process only forks, watches and stops the
 * workers, and with `--metrics` serves the sum of theirs.
 */
async function superviseCluster(
  options: CliRun,
  argv: string[],
  host: CliHost,
  logs: CliLogs,
  signals: Signals,
  hup: HupTargets,
  metricsDir: string | undefined,
): Promise<number> {
  const { lifecycle } = options;
  const { log } = logs;
  let metrics: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  if (options.metrics) {
    // Loaded only with --metrics: prom-client costs start-up time and memory.
    const { processRegistry } = await import("../metrics/registry.ts");
    const { serveMetrics } = await import("../metrics/server.ts");
    const registry = processRegistry();
    const json = () => registry.getMetricsAsJSON();
    const at = options.metrics;
    metrics = await serveMetrics(at, { json, workersDir: metricsDir }).catch((error) =>
      fail(host, metricsListenError(at, error).message, 1)
    );
  }
  log.info(`Serving ${describeListen(options)} from ${lifecycle.workers} worker processes`);
  if (metrics) log.info(`Metrics on ${metricsUrl(metrics.addr)}`);
  const workerEnv: Record<string, string> = metricsDir ? { [METRICS_DIR_ENV]: metricsDir } : {};
  const workers = hup.workers = startWorkers(lifecycle.workers, argv, log, 0, workerEnv);
  if (isDaemonChild()) daemonReady();
  return new Promise((resolve) => {
    let stopping = false;
    let draining = false;
    let grace: ReturnType<typeof setTimeout> | undefined;
    signals.onStop((signal) => {
      if (stopping && !(draining && secondSignalEndsDrain(signal))) return;
      clearTimeout(grace);
      const drain = !stopping && signal === "SIGTERM" ? lifecycle.drainTimeout : 0;
      const verb = drain > 0
        ? `draining ${lifecycle.workers} workers for up to ${drain} s`
        : `stopping ${lifecycle.workers} workers`;
      log.info(`Got ${signal}${stopping ? " while draining" : ""}, ${verb}`);
      draining = drain > 0;
      // Workers do not restart once stopping; SIGINT cuts their drains short.
      grace = setTimeout(() => resolve(0), graceMs(drain));
      grace.unref();
      if (stopping) return void workers.stop("SIGINT");
      stopping = true;
      workers.stop(drain > 0 ? "SIGTERM" : "SIGINT").then(() => metrics?.close()).then(() =>
        logs.close()
      ).then(() => {
        clearTimeout(grace);
        resolve(0);
      });
    });
  });
}

/** The `/metrics` URL of a metrics listener, for the log. */
function metricsUrl(addr: NetAddr): string {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return `http://${host}:${addr.port}/metrics`;
}

/** How long after a stop signal the process exits anyway: the drain window, then the grace. */
function graceMs(drainSeconds: number): number {
  return Math.min(drainSeconds * 1000 + STOP_GRACE_MS, MAX_TIMER_MS);
}

/**
 * Whether a second signal during a drain ends it at once. A worker takes
 * only SIGINT: under systemd a SIGTERM reaches every process of the unit
 * and the supervisor forwards its own, so a worker sees it twice.
 */
function secondSignalEndsDrain(signal: string): boolean {
  return signal === "SIGINT" || workerNumber() === 0;
}
