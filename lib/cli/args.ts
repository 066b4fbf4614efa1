/**
 * Command-line parsing: upstream's positional forms and error texts, into
 * the settings below. Pure; `adapters/cli/run.ts` does the running.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { HANDSHAKE_TIMEOUT_MS } from "../limits.ts";
import { UsageError } from "../errors.ts";
import type { LogFormat } from "../log.ts";
import { parseListen } from "../target.ts";
import { parseCidrList } from "../net/cidr.ts";
import { HOST_TOKEN, parseTokenFrom, type TokenSource } from "../plugins/token.ts";
import { parseTargetRules, type TargetRule } from "../plugins/target_rules.ts";
import type { NetAddr, Target } from "../types.ts";
import { OPTIONS, SSL_VERSIONS } from "./options.ts";
import {
  admissionArgs,
  countBefore,
  integer,
  lifecycleArgs,
  pluginArgs,
  targetArg,
} from "./rules.ts";

export {
  HELP,
  KEY_PASSWORD_ENV,
  OPTIONS,
  type OptionSpec,
  SSL_VERSIONS,
  USAGE,
} from "./options.ts";

/** What to do when the wrapped program exits. */
export type WrapMode = "exit" | "ignore" | "respawn";

/** Process and logging settings (issue: lifecycle). */
export interface CliLifecycle {
  /** `-- PROGRAM ARGS`: the program to start and forward to. */
  readonly wrap?: { readonly command: readonly string[]; readonly mode: WrapMode };
  readonly record?: string;
  readonly daemon: boolean;
  readonly pidFile?: string;
  readonly runOnce: boolean;
  /** Seconds; 0 is off. */
  readonly timeout: number;
  /** Seconds; 0 is off. */
  readonly idleTimeout: number;
  /** Seconds SIGTERM lets sessions run before closing them; 0 closes at once. */
  readonly drainTimeout: number;
  readonly logFile?: string;
  readonly syslog?: string;
  readonly legacySyslog: boolean;
  /** Listen on the socket passed as fd 0. */
  readonly inetd: boolean;
  /** Listen on the socket systemd passed as fd 3 (socket activation). */
  readonly activated: boolean;
  /** `--libserver` was given: upstream's Python server variant; warn only. */
  readonly libserver: boolean;
  /** Processes serving the port (`--workers`), at least 1. */
  readonly workers: number;
  readonly unixListen?: { readonly path: string; readonly mode: number };
}

/**
 * Admission and session limits (README, "Limits"); 0 is off. The names are
 * `websockify()`'s options.
 */
export interface CliAdmission {
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly maxConnectionsPerToken: number;
  /** New sessions per client address per minute. */
  readonly rateLimit: number;
  /** Seconds. */
  readonly maxSessionDuration: number;
  /** Seconds. */
  readonly sessionIdleTimeout: number;
  /** `--allow-client` CIDR blocks, checked. */
  readonly allowClient?: readonly string[];
}

/** A plugin named on the command line. */
export interface CliPlugin {
  readonly name: string;
  readonly source?: string;
}

/** TLS settings from the command line; file paths as given. */
export interface CliTls {
  /** `--cert`, when given; the runner falls back to `self.pem`. */
  readonly cert?: string;
  readonly key?: string;
  readonly passphrase?: string;
  readonly minVersion?: "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  readonly ciphers?: string;
  readonly verifyClient: boolean;
  readonly ca?: string;
  readonly sslOnly: boolean;
  /** `--ssl-target-cafile`. */
  readonly targetCa?: string;
}

/** Settings for running the proxy. */
export interface CliRun {
  readonly help: false;
  /** Undefined with `--inetd`, `--unix-listen` or socket activation. */
  readonly listen?: NetAddr;
  /** Undefined when a token plugin or a wrapped program chooses targets. */
  readonly target?: Target;
  readonly tokenPlugin?: CliPlugin;
  /** `--token-from` (`--host-token` is `host`); undefined: the query, as upstream. */
  readonly tokenFrom?: readonly TokenSource[];
  /** `--allow-target`: rules for the token plugin's targets; undefined: any target. */
  readonly allowTarget?: readonly TargetRule[];
  /** `--trusted-proxy`, checked; as given. */
  readonly trustedProxy?: string;
  readonly proxyProtocol: boolean;
  readonly targetProxyProtocol: boolean;
  readonly authPlugin?: CliPlugin;
  readonly webAuth: boolean;
  /** Connect to targets with TLS (`--ssl-target`). */
  readonly sslTarget: boolean;
  readonly verbose: boolean;
  /** `--log-format`: text (default) or json. */
  readonly logFormat: LogFormat;
  readonly traffic: boolean;
  readonly preferIpv6: boolean;
  /** Seconds between pings; 0 is off. */
  readonly heartbeat: number;
  /** `--handshake-timeout` in seconds; 0 is off. */
  readonly handshakeTimeout: number;
  readonly tls: CliTls;
  /** `--web` directory, as given. */
  readonly web?: string;
  readonly fileOnly: boolean;
  /** `--metrics`: where to serve `/metrics`, `/healthz` and `/readyz`. */
  readonly metrics?: NetAddr;
  readonly lifecycle: CliLifecycle;
  readonly admission: CliAdmission;
}

/** Parsed command line: either `--help` or settings to run with. */
export type CliOptions = { readonly help: true } | CliRun;

/** Rewrites a `node:util` parseArgs error in optparse's words. */
function optparseError(error: unknown): UsageError {
  const { code, message = String(error) } = error as { code?: string; message?: string };
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const long = /--[\w-]+/.exec(quoted)?.[0] ?? quoted;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return new UsageError(`no such option: ${quoted.split("=")[0]}`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && message.endsWith("argument missing")) {
    return new UsageError(`${long} option requires 1 argument`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return new UsageError(`${long} option does not take a value`);
  }
  // Other texts end with advice about "--" that does not apply here.
  return new UsageError(message.split(". ")[0]!);
}

/**
 * Parses websockify's arguments; throws {@link UsageError} on bad input.
 * `activated`: systemd passed a listening socket, so no listen address is
 * taken, as with `--inetd`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCliArgs } from "./args.ts";
 *
 * const options = parseCliArgs(["6080", "localhost:5900"]);
 * assert.ok(!options.help);
 * assert.deepEqual(options.target, { kind: "tcp", hostname: "localhost", port: 5900 });
 * ```
 */
export function parseCliArgs(argv: readonly string[], activated = false): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      tokens: true,
      options: OPTIONS,
    });
  } catch (error) {
    throw optparseError(error);
  }
  const { values, positionals, tokens } = parsed;
  // --help needs no positionals, like optparse's.
  if (values.help) return { help: true };
  const heartbeat = integer("heartbeat", values.heartbeat);
  // After "--" comes the program to wrap (parseArgs mixes it into positionals).
  const end = tokens.find((t) => t.kind === "option-terminator")?.index;
  const before = end === undefined ? positionals : positionals.slice(0, countBefore(tokens, end));
  const command = end === undefined ? undefined : positionals.slice(before.length);
  const lifecycle = lifecycleArgs(values, command, activated);
  // With --inetd or --unix-listen no listen positional is taken, as upstream.
  const socketGiven = lifecycle.inetd || lifecycle.unixListen !== undefined || activated;
  const listenArg = socketGiven ? undefined : before[0];
  const rest = socketGiven ? before : before.slice(1);
  if (!socketGiven && listenArg === undefined) throw new UsageError("Too few arguments");
  const listen = listenArg === undefined ? undefined : parseListen(listenArg);
  const { tokenPlugin, authPlugin } = pluginArgs(values);
  const sslTarget = values["ssl-target"] ?? false;
  const chosen = tokenPlugin !== undefined || command !== undefined;
  let target = targetArg(rest, values["unix-target"], chosen);
  if (sslTarget && target) {
    if (target.kind === "unix") throw new UsageError("--ssl-target needs a TCP target");
    target = { ...target, tls: true };
  }
  if (values["web-auth"] && (!authPlugin || values.web === undefined)) {
    throw new UsageError("You must use --auth-plugin and --web to use --web-auth");
  }
  const sslVersion = values["ssl-version"] ?? "default";
  if (!(sslVersion in SSL_VERSIONS)) {
    throw new UsageError(`option --ssl-version: invalid choice: '${sslVersion}'`);
  }
  const trustedProxy = values["trusted-proxy"];
  if (trustedProxy !== undefined) {
    try {
      parseCidrList(trustedProxy);
    } catch (error) {
      throw new UsageError(`option --trusted-proxy: ${(error as Error).message}`);
    }
  }
  const logFormat = values["log-format"] ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new UsageError(
      `option --log-format: invalid choice: '${logFormat}' (choose from 'text', 'json')`,
    );
  }
  return {
    help: false,
    listen,
    target,
    tokenPlugin,
    tokenFrom: values["host-token"]
      ? HOST_TOKEN
      : values["token-from"] === undefined
      ? undefined
      : parseTokenFrom(values["token-from"]),
    allowTarget: values["allow-target"] === undefined
      ? undefined
      : parseTargetRules(values["allow-target"]),
    trustedProxy,
    proxyProtocol: values["proxy-protocol"] ?? false,
    targetProxyProtocol: values["target-proxy-protocol"] ?? false,
    authPlugin,
    webAuth: values["web-auth"] ?? false,
    sslTarget,
    web: values.web,
    fileOnly: values["file-only"] ?? false,
    tls: {
      cert: values.cert,
      key: values.key,
      passphrase: values["key-password"],
      minVersion: SSL_VERSIONS[sslVersion],
      ciphers: values["ssl-ciphers"],
      verifyClient: values["verify-client"] ?? false,
      ca: values.cafile,
      sslOnly: values["ssl-only"] ?? false,
      targetCa: values["ssl-target-cafile"],
    },
    verbose: values.verbose ?? false,
    logFormat,
    traffic: values.traffic ?? false,
    preferIpv6: values["prefer-ipv6"] ?? false,
    heartbeat,
    // Only when given: the parsed options of older command lines stay as they were.
    ...values.metrics === undefined ? {} : { metrics: metricsArg(values.metrics) },
    handshakeTimeout: values["handshake-timeout"] === undefined
      ? HANDSHAKE_TIMEOUT_MS / 1000
      : integer("handshake-timeout", values["handshake-timeout"]),
    lifecycle,
    admission: admissionArgs(values),
  };
}

/** `--metrics=[ADDR:]PORT`; a port alone listens on 127.0.0.1 only. */
function metricsArg(value: string): NetAddr {
  let addr: NetAddr;
  try {
    addr = parseListen(value);
  } catch {
    throw new UsageError(`option --metrics: invalid address '${value}' (use [ADDR:]PORT)`);
  }
  return value.includes(":") ? addr : { hostname: "127.0.0.1", port: addr.port };
}
