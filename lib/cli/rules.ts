/**
 * The option groups that parse into one setting each, with upstream's
 * rules on which options go together. Pure; `parseCliArgs()` in
 * `args.ts` puts them together.
 *
 * @module
 */
import { parseCidr } from "../net/cidr.ts";
import { UsageError } from "../errors.ts";
import { parseTarget } from "../target.ts";
import type { Target } from "../types.ts";
import type { CliAdmission, CliLifecycle, CliPlugin, WrapMode } from "./args.ts";

/** A non-negative integer option; 0 when absent. */
export function integer(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`option --${name}: invalid integer value: '${value}'`);
  }
  return Number(value);
}

/** A positive integer option; 0 (off) when absent. */
function positive(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`option --${name}: invalid positive integer value: '${value}'`);
  }
  return Number(value);
}

/** A non-negative number of seconds, fractions allowed; 0 when not given. */
export function seconds(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+(\.\d+)?$/.test(value)) {
    throw new UsageError(`option --${name}: invalid non-negative number: '${value}'`);
  }
  return Number(value);
}

/** The admission limits (`lib/http/admission.ts`) and session limits. */
export function admissionArgs(values: Record<string, string | boolean | undefined>): CliAdmission {
  const text = (name: string) => values[name] as string | undefined;
  const allow = text("allow-client");
  const allowClient = allow?.split(",").map((block) => block.trim());
  for (const block of allowClient ?? []) {
    if (!parseCidr(block)) {
      throw new UsageError(`option --allow-client: invalid CIDR block: '${block}'`);
    }
  }
  return {
    maxConnections: positive("max-connections", text("max-connections")),
    maxConnectionsPerIp: positive("max-connections-per-ip", text("max-connections-per-ip")),
    maxConnectionsPerToken: positive(
      "max-connections-per-token",
      text("max-connections-per-token"),
    ),
    rateLimit: positive("rate-limit", text("rate-limit")),
    maxSessionDuration: positive("max-session-duration", text("max-session-duration")),
    sessionIdleTimeout: positive("session-idle-timeout", text("session-idle-timeout")),
    allowClient,
  };
}

/** `--workers=N`, checked against what cannot be shared between processes. */
function workerCount(
  value: string | undefined,
  wrap: boolean,
  inetd: boolean,
  unixPath: string | undefined,
  runOnce: boolean,
  activated: boolean,
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
    : activated
    ? "socket activation"
    : undefined;
  if (clash) throw new UsageError(`--workers cannot be used with ${clash}`);
  return n;
}

/** How many positional tokens come before token index `end`. */
export function countBefore(tokens: { kind: string; index: number }[], end: number): number {
  return tokens.filter((t) => t.kind === "positional" && t.index < end).length;
}

const WRAP_MODES: readonly WrapMode[] = ["exit", "ignore", "respawn"];

/** The process and logging options, with their cross-checks. */
export function lifecycleArgs(
  values: Record<string, string | boolean | undefined>,
  command: string[] | undefined,
  activated = false,
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
  // The passed socket is this process's; a daemon child would not get it.
  const clash = flag("inetd")
    ? "--inetd"
    : unixPath !== undefined
    ? "--unix-listen"
    : flag("daemon")
    ? "--daemon"
    : undefined;
  if (activated && clash) throw new UsageError(`${clash} cannot be used with socket activation`);
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
    drainTimeout: seconds("drain-timeout", text("drain-timeout")),
    logFile: text("log-file"),
    syslog: text("syslog"),
    legacySyslog: flag("legacy-syslog"),
    inetd: flag("inetd"),
    activated,
    libserver: flag("libserver"),
    workers: workerCount(
      text("workers"),
      command !== undefined,
      flag("inetd"),
      unixPath,
      flag("run-once"),
      activated,
    ),
    unixListen: unixPath === undefined
      ? undefined
      : { path: unixPath, mode: parseInt(modeText, 8) },
  };
}

/** The target positional (or `--unix-target`); none with a token plugin. */
export function targetArg(
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
export function pluginArgs(values: Record<string, string | boolean | undefined>): {
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
  for (const option of ["host-token", "token-from", "allow-target"]) {
    if (tokenName === undefined && values[option] !== undefined) {
      throw new UsageError(`You must use --token-plugin to use --${option}`);
    }
  }
  if (values["host-token"] && values["token-from"] !== undefined) {
    throw new UsageError("Use --token-from or --host-token (--token-from=host)");
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
