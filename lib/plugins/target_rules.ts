/**
 * `--allow-target`: the rules a token plugin's targets must match, so that a
 * compromised or mistaken token store cannot turn the proxy into an open
 * relay. Parsing and matching are pure; {@link guardTargets} applies them to
 * an upgrade with a name lookup the caller injects (`adapters/connect/`), and
 * pins a name to the checked address it resolved to, so that the name cannot
 * be rebound past the check between the check and the connect.
 *
 * @module
 */
import type { ResolvedTarget, ResolveTarget } from "../http/app.ts";
import { refuse, refuseFields } from "../http/refuse.ts";
import { errorText, UsageError } from "../errors.ts";
import { logEvent, type Logger, tokenLabel } from "../log.ts";
import { type Cidr, cidrContains, parseCidr, parseIp } from "../net/cidr.ts";
import { clientLabel, formatTarget } from "../target.ts";
import type { Target } from "../types.ts";

/** The ports a rule allows, both ends included (1-65535 when it names none). */
export interface PortRange {
  /** The lowest port allowed. */
  readonly low: number;
  /** The highest port allowed. */
  readonly high: number;
}

/** One `--allow-target` rule. */
export type TargetRule =
  /** A host name, lower case without a trailing dot; `wildcard`: any name below it. */
  | ({ readonly kind: "name"; readonly name: string; readonly wildcard: boolean } & PortRange)
  /** An IP address or network (`lib/net/cidr.ts`): 4 or 16 bytes and a prefix length. */
  | ({ readonly kind: "ip" } & Cidr & PortRange)
  /** Unix socket paths below `dir` (normalised, ending in `/`). */
  | { readonly kind: "unix"; readonly dir: string };

const ALL_PORTS: PortRange = { low: 1, high: 65535 };
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Parses `--allow-target=RULE[,RULE…]`: a host name (`*.` for any name
 * below one), an IP address or CIDR (IPv6 in brackets when a port follows),
 * each with an optional `:PORT` or `:LOW-HIGH`, or `unix:/dir/`. Throws
 * {@link UsageError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTargetRules } from "./target_rules.ts";
 *
 * const [rule] = parseTargetRules("*.vnc.example:5900-5999");
 * assert.deepEqual(rule, { kind: "name", name: "vnc.example", wildcard: true, low: 5900, high: 5999 });
 * assert.equal(parseTargetRules("10.0.0.0/8,[fd00::/8]:5900,unix:/run/vnc/").length, 3);
 * ```
 */
export function parseTargetRules(list: string): TargetRule[] {
  return list.split(",").map((text) => {
    const rule = parseRule(text.trim());
    if (!rule) throw new UsageError(`option --allow-target: cannot parse rule '${text.trim()}'`);
    return rule;
  });
}

function parseRule(text: string): TargetRule | undefined {
  if (text.startsWith("unix:")) {
    const dir = normalizePath(text.slice(5));
    return dir === undefined
      ? undefined
      : { kind: "unix", dir: dir.endsWith("/") ? dir : `${dir}/` };
  }
  let host = text;
  let ports: PortRange | undefined = ALL_PORTS;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return undefined;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== "") ports = rest.startsWith(":") ? parsePorts(rest.slice(1)) : undefined;
    if (!host.includes(":")) return undefined; // brackets are for IPv6 only
  } else if (text.indexOf(":") === text.lastIndexOf(":")) {
    // At most one colon: host:port. More: a bare IPv6 address or network.
    const colon = text.indexOf(":");
    if (colon >= 0) [host, ports] = [text.slice(0, colon), parsePorts(text.slice(colon + 1))];
  }
  if (!ports) return undefined;
  const slash = host.indexOf("/");
  if (parseIp(slash < 0 ? host : host.slice(0, slash))) {
    const cidr = parseCidr(host);
    return cidr && { kind: "ip", ...cidr, ...ports };
  }
  const name = host.toLowerCase().replace(/\.$/, "");
  const wildcard = name.startsWith("*.");
  const labels = (wildcard ? name.slice(2) : name).split(".");
  if (name.length > 253 || !labels.every((label) => LABEL.test(label))) return undefined;
  return { kind: "name", name: wildcard ? name.slice(2) : name, wildcard, ...ports };
}

function parsePorts(text: string): PortRange | undefined {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!match) return undefined;
  const low = Number(match[1]);
  const high = match[2] === undefined ? low : Number(match[2]);
  return low >= 1 && low <= high && high <= 65535 ? { low, high } : undefined;
}

/**
 * `path` with `.`, `..` and repeated slashes resolved, or undefined when it
 * is not absolute: a `..` never climbs above `/`.
 */
function normalizePath(path: string): string | undefined {
  if (!path.startsWith("/")) return undefined;
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") out.pop();
    else if (part !== "" && part !== ".") out.push(part);
  }
  return `/${out.join("/")}${path.endsWith("/") && out.length ? "/" : ""}`;
}

/**
 * True when a rule allows connecting to IP `address` on `port`; an
 * IPv4-mapped IPv6 address counts as the IPv4 address it reaches.
 */
export function allowsAddress(
  rules: readonly TargetRule[],
  address: string,
  port: number,
): boolean {
  const ipRules = rules.flatMap((r) =>
    r.kind === "ip" && port >= r.low && port <= r.high ? [r] : []
  );
  return cidrContains(ipRules, address);
}

/** True when a name rule allows host name `hostname` on `port` (by name alone). */
export function allowsName(rules: readonly TargetRule[], hostname: string, port: number): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, "");
  return rules.some((r) =>
    r.kind === "name" && port >= r.low && port <= r.high &&
    (r.wildcard ? name.endsWith(`.${r.name}`) : name === r.name)
  );
}

/** True when a unix rule's directory holds `path` (normalised; relative paths never). */
export function allowsPath(rules: readonly TargetRule[], path: string): boolean {
  const normal = normalizePath(path);
  return normal !== undefined && !normal.endsWith("/") &&
    rules.some((r) => r.kind === "unix" && normal.startsWith(r.dir));
}

/**
 * What the rules decide for `target`, given the addresses its host name
 * resolves to (`addresses`, only asked for when a name rule did not allow
 * it and an IP rule might): the target to connect to, pinned to the first
 * allowed address for a resolved name, or undefined when refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkTarget, parseTargetRules } from "./target_rules.ts";
 *
 * const rules = parseTargetRules("10.0.0.0/8:5900-5999");
 * const vm = { kind: "tcp", hostname: "vm1.example", port: 5901 } as const;
 * assert.deepEqual(await checkTarget(rules, vm, async () => ["10.0.0.7"]), { ...vm, address: "10.0.0.7" });
 * assert.equal(await checkTarget(rules, vm, async () => ["192.0.2.1"]), undefined);
 * ```
 */
export async function checkTarget(
  rules: readonly TargetRule[],
  target: Target,
  addresses: () => Promise<readonly string[]>,
): Promise<Target | undefined> {
  if (target.kind === "unix") return allowsPath(rules, target.path) ? target : undefined;
  const { hostname, port } = target;
  if (parseIp(hostname)) return allowsAddress(rules, hostname, port) ? target : undefined;
  if (allowsName(rules, hostname, port)) return target;
  if (!rules.some((r) => r.kind === "ip")) return undefined;
  const address = (await addresses()).find((a) => allowsAddress(rules, a, port));
  return address === undefined ? undefined : { ...target, address };
}

/** Options for {@link guardTargets}. */
export interface GuardOptions {
  readonly rules: readonly TargetRule[];
  /** Every address a host name resolves to (`adapters/connect/resolve.ts`). */
  readonly lookup: (hostname: string) => Promise<readonly string[]>;
  readonly log: Logger;
}

/**
 * Wraps a target resolver so that its targets must pass {@link checkTarget}:
 * others get `403 Target not allowed` and a log line naming the target (and
 * what its name resolved to), before the 101.
 */
export function guardTargets(resolveTarget: ResolveTarget, options: GuardOptions): ResolveTarget {
  const { rules, lookup, log } = options;
  return async (req, info) => {
    const resolved = await resolveTarget(req, info);
    if (resolved instanceof Response) return resolved;
    const { target, token }: ResolvedTarget = "target" in resolved
      ? resolved
      : { target: resolved };
    let seen: readonly string[] | undefined;
    let failure = "";
    const allowed = await checkTarget(rules, target, async () => {
      try {
        return seen = await lookup((target as { hostname: string }).hostname);
      } catch (error) {
        failure = `, name lookup failed: ${errorText(error)}`;
        return [];
      }
    });
    if (allowed) return { target: allowed, token };
    const via = seen ? ` (resolves to ${seen.join(", ") || "nothing"})` : failure;
    logEvent(
      log,
      "warn",
      `${clientLabel(info)}: Target ${formatTarget(target)}${via} not allowed by --allow-target`,
      {
        ...refuseFields(info, 403),
        target: formatTarget(target),
        token: token === undefined ? undefined : tokenLabel(token),
      },
    );
    return refuse(403, "Target not allowed");
  };
}
