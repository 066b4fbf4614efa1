#!/usr/bin/env node
/**
 * The `websockify` command: parses arguments, starts the proxy, logs to
 * stderr and exits 0 on SIGINT/SIGTERM after closing sessions with 1001.
 * Every start-up problem is one `websockify: error:` line and a non-zero exit.
 *
 * @module
 */
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { resolveHost } from "./adapters/server/listen.ts";
import { daemonize, daemonReady, isDaemonChild, writePidFile } from "./adapters/process/daemon.ts";
import { type LogFile, openLogFile } from "./adapters/output/log_file.ts";
import { keepFreedHeap } from "./adapters/process/malloc.ts";
import { createSyslogSink } from "./adapters/output/syslog.ts";
import type { TlsOptions } from "./adapters/server/tls.ts";
import {
  exitWithParent,
  isClusterPrimary,
  probePort,
  startWorkers,
  WORKER_PORT_ENV,
  workerIndex,
  workerMode,
  workerNumber,
  type Workers,
} from "./adapters/process/workers.ts";
import { prepareWrap, type Wrap } from "./adapters/process/wrap.ts";
import {
  type CliOptions,
  type CliRun,
  type CliTls,
  HELP,
  KEY_PASSWORD_ENV,
  parseCliArgs,
  USAGE,
} from "./lib/cli/args.ts";
import { describeError, UsageError } from "./lib/errors.ts";
import { STOP_GRACE_MS } from "./lib/limits.ts";
import { createLogger, type Logger, prefixLogger } from "./lib/log.ts";
import {
  FACILITY_DAEMON,
  FACILITY_USER,
  parseSyslogAddress,
  type SyslogAddress,
  teeLogger,
} from "./lib/output/syslog.ts";
import type { TokenPlugin } from "./lib/plugins/plugins.ts";
import { formatAddr, formatTarget } from "./lib/target.ts";
import {
  ConfigError,
  loadAuthPlugin,
  loadTokenPlugin,
  type Websockify,
  websockify,
  type WebsockifyOptions,
} from "./mod.ts";

function fail(message: string, status: number): never {
  process.stderr.write(`websockify: error: ${message}\n`);
  process.exit(status);
}

function usageError(message: string): never {
  process.stderr.write(`${USAGE}\n\n`);
  return fail(message, 2);
}

/** Parses `argv`; on a usage error prints usage and exits 2, as optparse does. */
function parseOrExit(argv: string[]): CliOptions {
  try {
    return parseCliArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return usageError(error.message);
  }
}

/** Server TLS from the options: `--cert`, else `self.pem` in the start-up directory if present. */
function serverTls(cli: CliTls): TlsOptions | undefined {
  const cert = path.resolve(cli.cert ?? "self.pem");
  if (cli.cert === undefined && !fs.existsSync(cert)) {
    if (cli.sslOnly || cli.verifyClient) usageError(`SSL only and ${cert} not found`);
    return undefined;
  }
  const passphrase = cli.passphrase ?? process.env[KEY_PASSWORD_ENV];
  return { ...cli, cert, key: cli.key && path.resolve(cli.key), passphrase };
}

/** With `--ssl-target`, targets from a token plugin are reached over TLS too. */
function withTls(plugin: TokenPlugin): TokenPlugin {
  return {
    async lookup(token) {
      const target = await plugin.lookup(token);
      return target?.kind === "tcp" ? { ...target, tls: true } : target;
    },
    close: () => plugin.close?.(),
  };
}

/** Everything `websockify()` needs, read from files and plugins. */
async function proxyOptions(
  options: CliRun,
  log: Logger,
  port: number | undefined,
): Promise<WebsockifyOptions> {
  const { target, tls: cli } = options;
  if (target?.kind === "tcp") {
    await resolveHost(target.hostname).catch((error) =>
      fail(`Cannot resolve target host "${target.hostname}": ${describeError(error)}`, 1)
    );
  }
  let tokenPlugin = options.tokenPlugin &&
    await loadTokenPlugin(options.tokenPlugin.name, options.tokenPlugin.source, { log });
  if (tokenPlugin && options.sslTarget) tokenPlugin = withTls(tokenPlugin);
  const authPlugin = options.authPlugin &&
    await loadAuthPlugin(options.authPlugin.name, options.authPlugin.source, { log });
  let targetCa: string | undefined;
  if (cli.targetCa !== undefined) {
    try {
      targetCa = fs.readFileSync(cli.targetCa, "utf8");
    } catch (error) {
      throw new ConfigError(`Cannot read "${cli.targetCa}": ${describeError(error)}`);
    }
  }
  const { lifecycle } = options;
  return {
    listen: lifecycle.inetd ? { fd: 0 } : lifecycle.unixListen ?? workerListen(options, port),
    target,
    record: lifecycle.record && recordBase(options),
    runOnce: lifecycle.runOnce,
    timeout: lifecycle.timeout,
    idleTimeout: lifecycle.idleTimeout,
    tokenPlugin,
    hostToken: options.hostToken,
    authPlugin,
    webAuth: options.webAuth,
    preferIpv6: options.preferIpv6,
    heartbeat: options.heartbeat,
    handshakeTimeout: options.handshakeTimeout,
    logger: log,
    tls: serverTls(cli),
    sslOnly: cli.sslOnly,
    targetCa,
    web: options.web,
    fileOnly: options.fileOnly,
    // Plugin sources may be files (TokenFile, TokenJWT keys); websockify() adds the TLS files.
    webExclude: [
      options.tokenPlugin?.source,
      options.authPlugin?.source,
      cli.targetCa,
      lifecycle.logFile,
    ].filter((f): f is string => f !== undefined),
  };
}

/** Upstream's start-up banner. */
function banner(
  log: Logger,
  options: CliRun,
  settings: WebsockifyOptions,
  server: Websockify,
  wrap?: Wrap,
) {
  const { lifecycle } = options;
  log.info("WebSocket server settings:");
  if (lifecycle.inetd) log.info("  - Listen for inetd connections");
  else if (lifecycle.unixListen) log.info(`  - Listen on unix socket ${lifecycle.unixListen.path}`);
  else log.info(`  - Listen on ${formatAddr(server.addr)}`);
  if (options.web !== undefined) {
    const kind = options.fileOnly ? " (no directory listings)" : "";
    log.info(`  - Web server${kind}. Web root: ${path.resolve(options.web)}`);
  }
  log.info(settings.tls ? "  - SSL/TLS support" : "  - No SSL/TLS support (no cert file)");
  const { sslOnly, verifyClient } = options.tls;
  if (sslOnly || verifyClient) {
    const why = sslOnly ? "" : " (implied by --verify-client)";
    log.info(`  - Deny non-SSL/TLS connections${why}`);
  }
  if (lifecycle.daemon) log.info("  - Backgrounding (daemon)");
  if (lifecycle.record) log.info(`  - Recording to '${recordBase(options)}.*'`);
  const using = options.sslTarget ? " (using SSL)" : "";
  const to = wrap
    ? wrap.description
    : options.target
    ? formatTarget(options.target)
    : `targets generated by ${options.tokenPlugin!.name}`;
  log.info(`  - proxying from ${formatAddr(server.addr)} to ${to}${using}`);
}

/** `--record`'s FILE; with `--workers`, FILE.wK for worker K, as ids are per worker. */
function recordBase(options: CliRun): string {
  const base = path.resolve(options.lifecycle.record!);
  const k = workerIndex(options.lifecycle.workers);
  return k > 0 ? `${base}.w${k}` : base;
}

/** Flushes the log file and syslog; {@link makeLogger} sets it. */
let closeLogs = (): Promise<void> => Promise.resolve();

/** Where log lines go: stderr, plus the files and servers asked for. */
function makeLogger(options: CliRun): Logger {
  const { logFile, syslog, legacySyslog, daemon } = options.lifecycle;
  const file = logFile === undefined ? undefined : openLogOrExit(logFile);
  const local = createLogger({
    write: (line) => {
      process.stderr.write(`${line}\n`);
      file?.write(line);
    },
    traffic: options.traffic ? (token) => process.stdout.write(token) : undefined,
    verbose: options.verbose,
  });
  // logrotate renames the file, then sends SIGHUP: go on at the original path.
  // Without a file SIGHUP is ignored: its default action would end the process.
  process.on("SIGHUP", () => {
    try {
      file?.reopen();
    } catch (error) {
      local.warn(`Cannot reopen log file ${file!.path}: ${describeError(error)}`);
    }
  });
  const sink = syslog === undefined ? undefined : createSyslogSink(syslogAddressOrExit(syslog), {
    legacy: legacySyslog,
    facility: daemon ? FACILITY_DAEMON : FACILITY_USER,
    onError: (message) => local.warn(message), // not to syslog itself
  });
  closeLogs = async () => {
    await sink?.close();
    file?.close();
  };
  const log = sink ? teeLogger(local, sink.send) : local;
  // Each worker numbers its sessions from 1: "w2 #5" tells them apart.
  const k = workerIndex(options.lifecycle.workers);
  return k > 0 ? prefixLogger(log, `w${k}`) : log;
}

/** Opens `--log-file`, or exits 1 with one error line. */
function openLogOrExit(file: string): LogFile {
  try {
    return openLogFile(file);
  } catch (error) {
    return fail(`Cannot open log file ${file}: ${describeError(error)}`, 1);
  }
}

/** A bad `--syslog` port is a usage error, as upstream's `parser.error`. */
function syslogAddressOrExit(text: string): SyslogAddress {
  try {
    return parseSyslogAddress(text);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return usageError(error.message);
  }
}

async function main(argv: string[]): Promise<void> {
  const options = parseOrExit(argv);
  if (options.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const { lifecycle } = options;
  if (lifecycle.daemon && !isDaemonChild()) await daemonize(argv);
  const log = makeLogger(options);
  exitWithParent();
  const listenText = describeListen(options);
  // Before the banner and before listening: a second instance stops here.
  if (lifecycle.pidFile !== undefined && workerNumber() === 0) {
    const file = path.resolve(lifecycle.pidFile);
    try {
      writePidFile(file);
    } catch (error) {
      fail(`Cannot write pid file ${file}: ${describeError(error)}`, 1);
    }
  }
  // Workers share the port with SO_REUSEPORT (or the cluster's one socket), so
  // it must be free first: an old instance's workers would share it too.
  let port: number | undefined;
  if (lifecycle.workers > 1 && workerNumber() === 0) {
    try {
      port = await probePort(options.listen!.hostname, options.listen!.port, options.preferIpv6);
    } catch (error) {
      fail(`Cannot listen on ${listenText}: ${describeError(error)}`, 1);
    }
  }
  if (isClusterPrimary(lifecycle.workers) && workerNumber() === 0) {
    return superviseCluster(options, argv, log);
  }
  let settings: WebsockifyOptions;
  let server: Websockify;
  let wrap: Wrap | undefined;
  try {
    wrap = lifecycle.wrap && await prepareWrap({ ...lifecycle.wrap, log });
    settings = await proxyOptions(options, log, port);
    if (wrap) settings = wrap.proxyOptions(settings);
    server = await websockify(settings);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 1);
    fail(`Cannot listen on ${listenText}: ${describeError(error)}`, 1);
  }
  // --run-once, --timeout and --idle-timeout end the server by themselves.
  let status = 0; // the wrapped program's, with --wrap-mode=exit
  let workers: Workers | undefined;
  server.closed.then(() => Promise.all([wrap?.stop(), workers?.stop()])).then(() => closeLogs())
    .then(() => process.exit(status));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`Got ${signal}, closing ${server.sessions} session(s)`);
    // Bounded: a session that does not close in time is cut.
    setTimeout(() => process.exit(status), STOP_GRACE_MS).unref();
    server.close();
    wrap?.stop();
    workers?.stop();
  };
  // Before the banner: whoever reads "Listen on" may signal at once.
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));

  // One banner: the other workers say that they are listening.
  if (workerIndex(lifecycle.workers) <= 1) {
    banner(log, options, settings, server, wrap);
    if (options.traffic) {
      process.stdout.write("Traffic Legend:\n    } - Client receive\n    { - Target receive\n");
    }
    if (lifecycle.libserver) log.warn("--libserver has no effect: there is one server here");
  } else log.info(`Worker listening on ${formatAddr(server.addr)}`);
  if (lifecycle.workers > 1 && workerNumber() === 0) {
    workers = startWorkers(lifecycle.workers, argv, log, server.addr.port);
  }
  if (isDaemonChild()) daemonReady();
  wrap?.start(server.addr.port);
  wrap?.ended.then((code) => {
    status = code;
    stop("exit of the wrapped command");
  });
}

/** `--workers` on Node: this process only forks, watches and stops the workers. */
function superviseCluster(options: CliRun, argv: string[], log: Logger): void {
  const { lifecycle } = options;
  log.info(`Serving ${describeListen(options)} from ${lifecycle.workers} worker processes`);
  const workers = startWorkers(lifecycle.workers, argv, log);
  if (isDaemonChild()) daemonReady();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`Got ${signal}, stopping ${lifecycle.workers} workers`);
    setTimeout(() => process.exit(0), STOP_GRACE_MS).unref();
    workers.stop().then(() => closeLogs()).then(() => process.exit(0));
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

/** With `--workers` on Deno and Bun, every process listens with SO_REUSEPORT. */
function workerListen(options: CliRun, probed: number | undefined): WebsockifyOptions["listen"] {
  const shared = workerMode() === "reuseport" &&
    (options.lifecycle.workers > 1 || workerNumber() > 0);
  if (!shared) return options.listen;
  const port = workerNumber() > 1
    ? Number(process.env[WORKER_PORT_ENV])
    : probed ?? options.listen!.port;
  return { ...options.listen, port, reusePort: true };
}

/** The listen address as the banner and errors name it. */
function describeListen(options: CliRun): string {
  const { lifecycle, listen } = options;
  if (lifecycle.inetd) return "inetd socket (fd 0)";
  if (lifecycle.unixListen) return `unix socket ${lifecycle.unixListen.path}`;
  return formatAddr({
    hostname: listen!.hostname || (options.preferIpv6 ? "::" : "0.0.0.0"),
    port: listen!.port,
  });
}

keepFreedHeap();
main(process.argv.slice(2)).catch((error) => fail(describeError(error), 1));
