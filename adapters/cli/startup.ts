/**
 * From parsed options to a listening server: reads the files and plugins
 * that `websockify()` needs, prepares a wrapped program, and turns every
 * start-up problem into one error line and an exit status.
 *
 * @module
 */
import fs from "node:fs";
import path from "node:path";
import { type CliRun, type CliTls, KEY_PASSWORD_ENV } from "../../lib/cli/args.ts";
import { describeError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { TokenPlugin } from "../../lib/plugins/plugins.ts";
import { ConfigError } from "../../lib/errors.ts";
import { ACTIVATION_FD } from "../../lib/process/activation.ts";
import { loadAuthPlugin, loadTokenPlugin } from "../stores/plugins.ts";
import {
  type MetricsOptions,
  type Websockify,
  websockify,
  type WebsockifyOptions,
} from "../websockify.ts";
import { METRICS_DIR_ENV, WORKER_PORT_ENV, workerMode, workerNumber } from "../process/workers.ts";
import { prepareWrap, type Wrap } from "../process/wrap.ts";
import { resolveHost } from "../server/listen.ts";
import type { TlsOptions } from "../server/tls.ts";
import { recordBase } from "./banner.ts";
import { CliExit, type CliHost, fail, usageError } from "./host.ts";

/** A started server, with the settings it got and its wrapped program. */
export interface Started {
  readonly server: Websockify;
  readonly settings: WebsockifyOptions;
  readonly wrap?: Wrap;
}

/**
 * Starts the server; a problem ends the run with one error line: a
 * {@link ConfigError}'s message, else "Cannot listen on `listenText`".
 * `port`: the port probed for `--workers`; `metricsDir`: where the workers'
 * metrics sockets go, in the process that owns the metrics port.
 */
export async function startServer(
  options: CliRun,
  host: CliHost,
  log: Logger,
  port: number | undefined,
  listenText: string,
  metricsDir?: string,
): Promise<Started> {
  try {
    const wrap = options.lifecycle.wrap &&
      await prepareWrap({ ...options.lifecycle.wrap, log, env: host.env });
    let settings = await proxyOptions(options, host, log, port);
    settings.metrics = metricsOptions(options, host, metricsDir);
    if (wrap) settings = wrap.proxyOptions(settings);
    return { server: await websockify(settings), settings, wrap };
  } catch (error) {
    if (error instanceof CliExit) throw error;
    if (error instanceof ConfigError) fail(host, error.message, 1);
    return fail(host, `Cannot listen on ${listenText}: ${describeError(error)}`, 1);
  }
}

/** Everything `websockify()` needs, read from files and plugins. */
async function proxyOptions(
  options: CliRun,
  host: CliHost,
  log: Logger,
  port: number | undefined,
): Promise<WebsockifyOptions> {
  const { target, tls: cli } = options;
  if (target?.kind === "tcp") {
    await resolveHost(target.hostname).catch((error) =>
      fail(host, `Cannot resolve target host "${target.hostname}": ${describeError(error)}`, 1)
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
      targetCa = fs.readFileSync(path.resolve(host.cwd, cli.targetCa), "utf8");
    } catch (error) {
      throw new ConfigError(`Cannot read "${cli.targetCa}": ${describeError(error)}`);
    }
  }
  const { lifecycle } = options;
  return {
    listen: lifecycle.inetd
      ? { fd: 0 }
      : lifecycle.activated
      ? { fd: ACTIVATION_FD }
      : lifecycle.unixListen ?? workerListen(options, host, port),
    target,
    record: lifecycle.record && recordBase(options, host.cwd),
    runOnce: lifecycle.runOnce,
    timeout: lifecycle.timeout,
    idleTimeout: lifecycle.idleTimeout,
    tokenPlugin,
    tokenFrom: options.tokenFrom,
    allowTarget: options.allowTarget,
    trustedProxy: options.trustedProxy,
    proxyProtocol: options.proxyProtocol,
    targetProxyProtocol: options.targetProxyProtocol,
    authPlugin,
    webAuth: options.webAuth,
    preferIpv6: options.preferIpv6,
    heartbeat: options.heartbeat,
    handshakeTimeout: options.handshakeTimeout,
    ...options.admission,
    logger: log,
    tls: serverTls(cli, host),
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

/** Server TLS from the options: `--cert`, else `self.pem` in the start-up directory if present. */
function serverTls(cli: CliTls, host: CliHost): TlsOptions | undefined {
  const cert = path.resolve(host.cwd, cli.cert ?? "self.pem");
  if (cli.cert === undefined && !fs.existsSync(cert)) {
    if (cli.sslOnly || cli.verifyClient) usageError(host, `SSL only and ${cert} not found`);
    return undefined;
  }
  const passphrase = cli.passphrase ?? host.env[KEY_PASSWORD_ENV];
  const key = cli.key && path.resolve(host.cwd, cli.key);
  return { ...cli, cert, key, passphrase };
}

/** With `--ssl-target`, targets from a token plugin are reached over TLS too. */
function withTls(plugin: TokenPlugin): TokenPlugin {
  return {
    async lookup(token) {
      const target = await plugin.lookup(token);
      return target?.kind === "tcp" ? { ...target, tls: true } : target;
    },
    close: () => plugin.close?.(),
    ...plugin.reload && { reload: () => plugin.reload!() },
    ready: plugin.ready && (() => plugin.ready!()),
  };
}

/**
 * `--metrics`: a worker serves its metrics on a socket in the directory that
 * its supervisor named, the process owning the metrics port listens there.
 */
function metricsOptions(
  options: CliRun,
  host: CliHost,
  workersDir: string | undefined,
): MetricsOptions | undefined {
  if (!options.metrics) return undefined;
  const dir = host.env[METRICS_DIR_ENV];
  const k = workerNumber();
  if (k > 0 && dir !== undefined) return { socket: path.join(dir, `${k}.sock`) };
  return { ...options.metrics, workersDir };
}

/** With `--workers` on Deno and Bun, every process listens with SO_REUSEPORT. */
function workerListen(
  options: CliRun,
  host: CliHost,
  probed: number | undefined,
): WebsockifyOptions["listen"] {
  const shared = workerMode() === "reuseport" &&
    (options.lifecycle.workers > 1 || workerNumber() > 0);
  if (!shared) return options.listen;
  const port = workerNumber() > 1
    ? Number(host.env[WORKER_PORT_ENV])
    : probed ?? options.listen!.port;
  return { ...options.listen, port, reusePort: true };
}
