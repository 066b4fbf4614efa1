/**
 * Command-line parsing: upstream's option names, positional forms and error
 * texts. Pure; `cli.ts` does the running.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { HANDSHAKE_TIMEOUT_MS } from "../limits.ts";
import { UsageError } from "../errors.ts";
import { parseListen, parseTarget } from "../target.ts";
import type { NetAddr, Target } from "../types.ts";

/** Where the key password may come from instead of `--key-password`, which `ps` shows. */
export const KEY_PASSWORD_ENV = "WEBSOCKIFY_KEY_PASSWORD";

/** Usage lines, as upstream prints them. */
export const USAGE = `Usage:
    websockify [options] [source_addr:]source_port target_addr:target_port
    websockify [options] --token-plugin=CLASS [source_addr:]source_port
    websockify [options] --unix-target=FILE [source_addr:]source_port
    websockify [options] [source_addr:]source_port -- WRAP_COMMAND_LINE`;

/** One command-line option: its `node:util` parseArgs config plus help. */
export interface OptionSpec {
  readonly type: "boolean" | "string";
  readonly short?: string;
  /** The value's name in the help text (string options). */
  readonly arg?: string;
  readonly help: string;
}

/**
 * Every option, keyed by long name. The parser and `--help` both read this
 * table, so an option cannot exist without help text.
 */
export const OPTIONS = {
  help: { type: "boolean", short: "h", help: "show this help message and exit" },
  verbose: { type: "boolean", short: "v", help: "verbose messages (debug level)" },
  traffic: { type: "boolean", help: "per frame traffic tokens on stdout" },
  "prefer-ipv6": {
    type: "boolean",
    short: "6",
    help: "prefer IPv6 when resolving the listen address",
  },
  "unix-target": {
    type: "string",
    arg: "FILE",
    help: "connect to the unix socket FILE instead of host:port",
  },
  heartbeat: {
    type: "string",
    arg: "N",
    help: "ping the client every N seconds; drop it after two missed pongs",
  },
  "handshake-timeout": {
    type: "string",
    arg: "N",
    help: `drop a client with no handshake or request in N s (default ${
      HANDSHAKE_TIMEOUT_MS / 1000
    }; 0: never)`,
  },
  web: {
    type: "string",
    arg: "DIR",
    help: "serve DIR on the same port (hides dotfiles and key files)",
  },
  "web-auth": { type: "boolean", help: "apply --auth-plugin to --web requests too" },
  "file-only": { type: "boolean", help: "with --web: no directory listings" },
  cert: {
    type: "string",
    arg: "CERT",
    help: "TLS certificate (PEM, may hold the key); default self.pem if present",
  },
  key: { type: "string", arg: "KEY", help: "TLS key file, if not in CERT" },
  "key-password": {
    type: "string",
    arg: "PASS",
    help: `password of KEY (or set ${KEY_PASSWORD_ENV})`,
  },
  "ssl-only": { type: "boolean", help: "refuse connections that do not use TLS" },
  "ssl-version": {
    type: "string",
    arg: "VERSION",
    help: "lowest TLS version: tlsv1_1, tlsv1_2 or tlsv1_3",
  },
  "ssl-ciphers": {
    type: "string",
    arg: "LIST",
    help: "allowed ciphers for TLS 1.2 and older (OpenSSL syntax); not on Deno",
  },
  "verify-client": {
    type: "boolean",
    help: "require a client certificate signed by --cafile; implies --ssl-only",
  },
  cafile: { type: "string", arg: "FILE", help: "CA bundle for --verify-client" },
  "ssl-target": {
    type: "boolean",
    help: "connect to the target with TLS, verifying its certificate and name",
  },
  "ssl-target-cafile": {
    type: "string",
    arg: "FILE",
    help: "also trust this CA for --ssl-target (self-signed targets)",
  },
  "token-plugin": {
    type: "string",
    arg: "NAME",
    help: "choose targets by token: a built-in plugin name or a module path",
  },
  "token-source": { type: "string", arg: "ARG", help: "argument for --token-plugin" },
  "target-config": {
    type: "string",
    arg: "FILE",
    help: "same as --token-plugin=TokenFile --token-source=FILE (deprecated)",
  },
  "host-token": { type: "boolean", help: "take the token from the Host header" },
  "auth-plugin": {
    type: "string",
    arg: "NAME",
    help: "check requests: a built-in plugin name or a module path",
  },
  "auth-source": { type: "string", arg: "ARG", help: "argument for --auth-plugin" },
  "wrap-mode": {
    type: "string",
    arg: "MODE",
    help: "when the wrapped program exits: exit (default), ignore, respawn",
  },
  record: { type: "string", arg: "FILE", help: "record each session to FILE.N (noVNC playback)" },
  daemon: { type: "boolean", short: "D", help: "become a daemon (background process)" },
  "pid-file": { type: "string", arg: "FILE", help: "write the process id to FILE" },
  "run-once": { type: "boolean", help: "handle a single WebSocket connection and exit" },
  timeout: {
    type: "string",
    arg: "N",
    help: "stop accepting N seconds after start; exit when sessions end",
  },
  "idle-timeout": {
    type: "string",
    arg: "N",
    help: "exit after N seconds without any connection",
  },
  "log-file": { type: "string", arg: "FILE", help: "also log to FILE (reopened on SIGHUP)" },
  syslog: {
    type: "string",
    arg: "SERVER",
    help: "also log to syslog: a socket path (/dev/log) or UDP host:port",
  },
  "legacy-syslog": { type: "boolean", help: "with --syslog: RFC 3164 instead of RFC 5424" },
  inetd: { type: "boolean", help: "take the listening socket from file descriptor 0" },
  "unix-listen": { type: "string", arg: "FILE", help: "listen on the unix socket FILE" },
  "unix-listen-mode": {
    type: "string",
    arg: "MODE",
    help: "octal permissions of --unix-listen (default 0600)",
  },
  libserver: { type: "boolean", help: "accepted for compatibility; has no effect" },
  workers: {
    type: "string",
    arg: "N",
    help: "serve the port from N processes (default 1), to use more cores",
  },
} as const satisfies Record<string, OptionSpec>;

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
  readonly logFile?: string;
  readonly syslog?: string;
  readonly legacySyslog: boolean;
  /** Listen on the socket passed as fd 0. */
  readonly inetd: boolean;
  /** `--libserver` was given: upstream's Python server variant; warn only. */
  readonly libserver: boolean;
  /** Processes serving the port (`--workers`), at least 1. */
  readonly workers: number;
  readonly unixListen?: { readonly path: string; readonly mode: number };
}

/** A plugin named on the command line. */
export interface CliPlugin {
  readonly name: string;
  readonly source?: string;
}

/** `--ssl-version` values and the protocol versions they mean. */
export const SSL_VERSIONS: Record<string, "TLSv1.1" | "TLSv1.2" | "TLSv1.3" | undefined> = {
  default: undefined,
  "tlsv1_1": "TLSv1.1",
  "tlsv1_2": "TLSv1.2",
  "tlsv1_3": "TLSv1.3",
};

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

function flagText(name: string, spec: OptionSpec): string {
  const long = spec.arg ? `--${name}=${spec.arg}` : `--${name}`;
  return spec.short ? `-${spec.short}, ${long}` : long;
}

/** The full `--help` text. */
export const HELP: string = `${USAGE}

Options:
${
  Object.entries(OPTIONS as Record<string, OptionSpec>)
    .map(([name, spec]) => `  ${flagText(name, spec).padEnd(28)}${spec.help}`)
    .join("\n")
}`;

/** Settings for running the proxy. */
export interface CliRun {
  readonly help: false;
  /** Undefined with `--inetd` or `--unix-listen`. */
  readonly listen?: NetAddr;
  /** Undefined when a token plugin or a wrapped program chooses targets. */
  readonly target?: Target;
  readonly tokenPlugin?: CliPlugin;
  readonly hostToken: boolean;
  readonly authPlugin?: CliPlugin;
  readonly webAuth: boolean;
  /** Connect to targets with TLS (`--ssl-target`). */
  readonly sslTarget: boolean;
  readonly verbose: boolean;
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
  readonly lifecycle: CliLifecycle;
}

/** Parsed command line: either `--help` or settings to run with. */
export type CliOptions = { readonly help: true } | CliRun;

function integer(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`option --${name}: invalid integer value: '${value}'`);
  }
  return Number(value);
}

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
 *
 * @example
 * ```ts
 * const options = parseCliArgs(["6080", "localhost:5900"]);
 * if (!options.help) console.log(options.target);
 * // { kind: "tcp", hostname: "localhost", port: 5900 }
 * ```
 */
export function parseCliArgs(argv: readonly string[]): CliOptions {
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
  const lifecycle = lifecycleArgs(values, command);
  // With --inetd or --unix-listen no listen positional is taken, as upstream.
  const socketGiven = lifecycle.inetd || lifecycle.unixListen !== undefined;
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
  return {
    help: false,
    listen,
    target,
    tokenPlugin,
    hostToken: values["host-token"] ?? false,
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
    traffic: values.traffic ?? false,
    preferIpv6: values["prefer-ipv6"] ?? false,
    heartbeat,
    handshakeTimeout: values["handshake-timeout"] === undefined
      ? HANDSHAKE_TIMEOUT_MS / 1000
      : integer("handshake-timeout", values["handshake-timeout"]),
    lifecycle,
  };
}

/** `--workers=N`, checked against what cannot be shared between processes. */
function workerCount(
  value: string | undefined,
  wrap: boolean,
  inetd: boolean,
  unixPath: string | undefined,
  runOnce: boolean,
): number {
  const n = value === undefined ? 1 : integer("workers", value);
  if (n < 1) throw new UsageError("option --workers: must be at least 1");
  if (n === 1) return 1;
  const clash = wrap
    ? "wrap mode"
    : inetd
    ? "--inetd"
    : unixPath !== undefined
    ? "--unix-listen"
    : runOnce
    ? "--run-once"
    : undefined;
  if (clash) throw new UsageError(`--workers cannot be used with ${clash}`);
  return n;
}

/** How many positional tokens come before token index `end`. */
function countBefore(tokens: { kind: string; index: number }[], end: number): number {
  return tokens.filter((t) => t.kind === "positional" && t.index < end).length;
}

const WRAP_MODES: readonly WrapMode[] = ["exit", "ignore", "respawn"];

/** The process and logging options, with their cross-checks. */
function lifecycleArgs(
  values: Record<string, string | boolean | undefined>,
  command: string[] | undefined,
): CliLifecycle {
  const text = (name: string) => values[name] as string | undefined;
  const flag = (name: string) => (values[name] as boolean | undefined) ?? false;
  const mode = text("wrap-mode") ?? "exit";
  if (!WRAP_MODES.includes(mode as WrapMode)) {
    throw new UsageError(`option --wrap-mode: invalid choice: '${mode}'`);
  }
  if (command !== undefined && command.length === 0) throw new UsageError("No program after --");
  const unixPath = text("unix-listen");
  const modeText = text("unix-listen-mode") ?? "600";
  if (!/^0?[0-7]{1,4}$/.test(modeText)) {
    throw new UsageError("Error parsing listen unix socket mode");
  }
  if (command !== undefined && unixPath !== undefined) {
    throw new UsageError("Wrap mode cannot be used with --unix-listen");
  }
  if (flag("legacy-syslog") && text("syslog") === undefined) {
    throw new UsageError("You must use --syslog to use --legacy-syslog");
  }
  return {
    wrap: command && { command, mode: mode as WrapMode },
    record: text("record"),
    daemon: flag("daemon"),
    pidFile: text("pid-file"),
    runOnce: flag("run-once"),
    timeout: integer("timeout", text("timeout")),
    idleTimeout: integer("idle-timeout", text("idle-timeout")),
    logFile: text("log-file"),
    syslog: text("syslog"),
    legacySyslog: flag("legacy-syslog"),
    inetd: flag("inetd"),
    libserver: flag("libserver"),
    workers: workerCount(
      text("workers"),
      command !== undefined,
      flag("inetd"),
      unixPath,
      flag("run-once"),
    ),
    unixListen: unixPath === undefined
      ? undefined
      : { path: unixPath, mode: parseInt(modeText, 8) },
  };
}

/** The target positional (or `--unix-target`); none with a token plugin. */
function targetArg(
  args: string[],
  unixTarget: string | undefined,
  tokens: boolean,
): Target | undefined {
  const [arg, ...extra] = args;
  if (tokens || unixTarget !== undefined) {
    if (arg !== undefined) throw new UsageError("Too many arguments");
    return tokens ? undefined : { kind: "unix", path: unixTarget! };
  }
  if (arg === undefined) throw new UsageError("Too few arguments");
  if (extra.length > 0) throw new UsageError("Too many arguments");
  return parseTarget(arg);
}

/** The token and auth plugins, with upstream's rules on which flags go together. */
function pluginArgs(values: Record<string, string | boolean | undefined>): {
  tokenPlugin?: CliPlugin;
  authPlugin?: CliPlugin;
} {
  const text = (name: string) => values[name] as string | undefined;
  let tokenName = text("token-plugin");
  let tokenSource = text("token-source");
  const config = text("target-config");
  if (config !== undefined) {
    if (tokenName !== undefined) throw new UsageError("Use --target-config or --token-plugin");
    [tokenName, tokenSource] = ["TokenFile", config];
  }
  if (tokenName === undefined && tokenSource !== undefined) {
    throw new UsageError("You must use --token-plugin to use --token-source");
  }
  if (tokenName === undefined && values["host-token"]) {
    throw new UsageError("You must use --token-plugin to use --host-token");
  }
  const authName = text("auth-plugin");
  const authSource = text("auth-source");
  if (authName === undefined && authSource !== undefined) {
    throw new UsageError("You must use --auth-plugin to use --auth-source");
  }
  return {
    tokenPlugin: tokenName === undefined ? undefined : { name: tokenName, source: tokenSource },
    authPlugin: authName === undefined ? undefined : { name: authName, source: authSource },
  };
}
