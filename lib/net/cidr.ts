/**
 * IP addresses and CIDR blocks: parsing, matching, and the key per-address
 * limits count under; for `--allow-client`, `--trusted-proxy`,
 * `--allow-target` and the PROXY protocol headers. An IPv4-mapped IPv6
 * address (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 peers)
 * matches as its IPv4 address. Zone ids (`%eth0`) are no part of an
 * address here. Pure.
 *
 * @module
 */

/**
 * A CIDR block: the network's address bytes (4 for IPv4, 16 for IPv6) and
 * its prefix length in bits (at most 32 or 128).
 */
export interface Cidr {
  /** The network address: 4 bytes (IPv4) or 16 (IPv6). */
  readonly bytes: Uint8Array;
  /** How many leading bits of `bytes` a matching address shares. */
  readonly prefix: number;
}

const IPV4_PART = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_PART = /^[0-9a-f]{1,4}$/i;
const PREFIX = /^\d{1,3}$/;

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => IPV4_PART.test(p))) return undefined;
  return Uint8Array.from(parts, Number);
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = ipv6Words(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? ipv6Words(halves[1]!, true) : [];
  if (!head || !tail) return undefined;
  // `::` stands for at least one group of zeros.
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const bytes = new Uint8Array(16);
  [...head, ...new Array<number>(missing).fill(0), ...tail].forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/** The 16-bit words of one side of `::`; an IPv4 tail (last only) counts as two. */
function ipv6Words(half: string, last: boolean): number[] | undefined {
  if (half === "") return [];
  const groups = half.split(":");
  const words: number[] = [];
  for (const [i, group] of groups.entries()) {
    const v4 = last && i === groups.length - 1 && group.includes(".")
      ? parseIpv4(group)
      : undefined;
    if (v4) words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    else if (HEX_PART.test(group)) words.push(parseInt(group, 16));
    else return undefined;
  }
  return words;
}

/**
 * An IP address as written: 4 bytes for dotted IPv4, 16 for IPv6 (an
 * IPv4-mapped one too: see {@link unmapped}), or undefined when `text` is
 * not one. No brackets, ports, zone ids or shortened IPv4 forms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIp } from "./cidr.ts";
 *
 * assert.deepEqual(parseIp("10.0.0.1"), new Uint8Array([10, 0, 0, 1]));
 * assert.equal(parseIp("::ffff:10.0.0.1")?.length, 16);
 * assert.equal(parseIp("fe80::1%eth0"), undefined);
 * assert.equal(parseIp("example.com"), undefined);
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/**
 * The IPv4 address (4 bytes) inside an IPv4-mapped IPv6 address, the one a
 * connection to it reaches; any other address as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIp, unmapped } from "./cidr.ts";
 *
 * assert.deepEqual(unmapped(parseIp("::ffff:10.0.0.1")!), new Uint8Array([10, 0, 0, 1]));
 * assert.equal(unmapped(parseIp("::1")!).length, 16);
 * ```
 */
export function unmapped(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  return bytes.subarray(12);
}

/**
 * `ADDRESS/PREFIX` or a bare address (one host), or undefined when `text`
 * is neither. A mapped block (`::ffff:10.0.0.0/104`) is the IPv4 block it
 * maps; a shorter IPv6 prefix (`::/0`) matches no IPv4 address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCidr } from "./cidr.ts";
 *
 * assert.deepEqual(parseCidr("10.0.0.0/8"), { bytes: new Uint8Array([10, 0, 0, 0]), prefix: 8 });
 * assert.deepEqual(parseCidr("::ffff:10.0.0.0/104"), parseCidr("10.0.0.0/8"));
 * assert.equal(parseCidr("10.0.0.0/33"), undefined);
 * ```
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const raw = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!raw) return undefined;
  const bits = raw.length * 8;
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!PREFIX.test(prefixText) || Number(prefixText) > bits) return undefined;
  const bytes = unmapped(raw);
  const prefix = Number(prefixText) - (raw.length - bytes.length) * 8;
  return prefix < 0 ? { bytes: raw, prefix: Number(prefixText) } : { bytes, prefix };
}

/**
 * CIDR blocks from comma-separated text, or from a list of such texts;
 * throws a `TypeError` naming the first entry that is not one (an empty
 * entry too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cidrContains, parseCidrList } from "./cidr.ts";
 *
 * const trusted = parseCidrList("10.0.0.0/8, ::1");
 * assert.ok(cidrContains(trusted, "10.1.2.3"));
 * assert.ok(cidrContains(trusted, "::ffff:10.1.2.3"));
 * assert.ok(!cidrContains(trusted, "192.0.2.1"));
 * assert.throws(() => parseCidrList("10.0.0.0/8,"), TypeError);
 * ```
 */
export function parseCidrList(list: string | readonly string[]): Cidr[] {
  return [list].flat().flatMap((text) => text.split(",")).map((part) => {
    const entry = part.trim();
    const cidr = parseCidr(entry);
    if (!cidr) throw new TypeError(`'${entry}' is not an IP address or CIDR block`);
    return cidr;
  });
}

/** Whether the address `bytes` (unmapped) is in `cidr`. */
function inCidr(cidr: Cidr, bytes: Uint8Array): boolean {
  if (cidr.bytes.length !== bytes.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (cidr.bytes[whole]! & mask) === (bytes[whole]! & mask);
}

/**
 * Whether the IP address `address` is in one of `list`; false when it is
 * no IP address (a host name, a socket path).
 */
export function cidrContains(list: readonly Cidr[], address: string): boolean {
  const bytes = parseIp(address);
  if (!bytes) return false;
  const ip = unmapped(bytes);
  return list.some((cidr) => inCidr(cidr, ip));
}

/**
 * The key per-address limits count under: an IPv4 address (a mapped one
 * too) as dotted text, an IPv6 address by its /64 network (one host or home
 * usually holds a whole /64, so counting single addresses would let it take
 * 2^64 of them), anything else (a socket path) as is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressKey } from "./cidr.ts";
 *
 * assert.equal(addressKey("2001:db8:1:2:a::1"), addressKey("2001:db8:1:2:b::2"));
 * assert.equal(addressKey("2001:db8:1:2:a::1"), "2001:db8:1:2::/64");
 * assert.equal(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
 * ```
 */
export function addressKey(address: string): string {
  const bytes = parseIp(address);
  if (!bytes) return address;
  const ip = unmapped(bytes);
  if (ip.length === 4) return ip.join(".");
  const words = [];
  for (let i = 0; i < 8; i += 2) words.push(((ip[i]! << 8) | ip[i + 1]!).toString(16));
  return `${words.join(":")}::/64`;
}
