/**
 * Command-line parsing: upstream's option names, positional forms and error
 * texts. Pure; `cli.ts` does the running.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseListen, parseTarget, UsageError } from "./target.ts";
import type { NetAddr, Target } from "./types.ts";

/** Usage lines, as upstream prints them. */
export const USAGE = `Usage:
    websockify [options] [source_addr:]source_port target_addr:target_port
    websockify [options] --unix-target=FILE [source_addr:]source_port`;

const OPTIONS = [
  ["-h, --help", "show this help message and exit"],
  ["-v, --verbose", "verbose messages (debug level)"],
  ["--traffic", "per frame traffic tokens on stdout"],
  ["-6, --prefer-ipv6", "prefer IPv6 when resolving the listen address"],
  ["--unix-target=FILE", "connect to the unix socket FILE instead of host:port"],
  ["--heartbeat=N", "ping the client every N seconds; drop it after two missed pongs"],
] as const;

/** The full `--help` text. */
export const HELP = `${USAGE}

Options:
${OPTIONS.map(([flag, text]) => `  ${flag.padEnd(22)}${text}`).join("\n")}`;

/** Parsed command-line settings. */
export interface CliOptions {
  readonly help: boolean;
  readonly listen: NetAddr;
  readonly target: Target;
  readonly verbose: boolean;
  readonly traffic: boolean;
  readonly preferIpv6: boolean;
  readonly heartbeat: number;
}

function integer(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`option --${name}: invalid integer value: '${value}'`);
  }
  return Number(value);
}

/**
 * Parses websockify's arguments; throws {@link UsageError} on bad input.
 *
 * @example
 * ```ts
 * parseCliArgs(["6080", "localhost:5900"]).target;
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
      options: {
        help: { type: "boolean", short: "h" },
        verbose: { type: "boolean", short: "v" },
        traffic: { type: "boolean" },
        "prefer-ipv6": { type: "boolean", short: "6" },
        "unix-target": { type: "string" },
        heartbeat: { type: "string" },
      },
    });
  } catch (error) {
    // node:util appends advice about "--" that does not apply here.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(". ")[0]!);
  }
  const { values, positionals, tokens } = parsed;
  const base = {
    verbose: values.verbose ?? false,
    traffic: values.traffic ?? false,
    preferIpv6: values["prefer-ipv6"] ?? false,
    heartbeat: integer("heartbeat", values.heartbeat),
  };
  if (values.help) {
    return {
      ...base,
      help: true,
      listen: { hostname: "", port: 0 },
      target: { kind: "unix", path: "" },
    };
  }
  if (tokens.some((t) => t.kind === "option-terminator")) {
    throw new UsageError("Wrap mode (-- PROGRAM) is not supported yet");
  }
  const [listenArg, targetArg, ...extra] = positionals;
  if (listenArg === undefined) throw new UsageError("Too few arguments");
  const listen = parseListen(listenArg);
  const unixTarget = values["unix-target"];
  let target: Target;
  if (unixTarget !== undefined) {
    if (targetArg !== undefined) throw new UsageError("Too many arguments");
    target = { kind: "unix", path: unixTarget };
  } else {
    if (targetArg === undefined) throw new UsageError("Too few arguments");
    if (extra.length > 0) throw new UsageError("Too many arguments");
    target = parseTarget(targetArg);
  }
  return { ...base, help: false, listen, target };
}
