/**
 * IP addresses and CIDR blocks: parsing and matching, for `--trusted-proxy`.
 * IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, as a dual-stack socket
 * reports IPv4 peers) count as their IPv4 address. Pure.
 *
 * @module
 */

/** A CIDR block: the network's address bytes (4 or 16) and its prefix length. */
export interface Cidr {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

const IPV4_PART = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_PART = /^[0-9a-f]{1,4}$/i;

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
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const bytes = new Uint8Array(16);
  [...head, ...new Array<number>(missing).fill(0), ...tail].forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/** The 16-bit words of one side of `::`; an IPv4 tail counts as two. */
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

/** The IPv4 address inside an IPv4-mapped IPv6 address, else the address itself. */
function unmapped(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  return bytes.subarray(12);
}

/**
 * An IP address as 4 bytes (IPv4, IPv4-mapped IPv6 too) or 16 (IPv6), or
 * undefined when `text` is not one. No brackets, ports or zones.
 *
 * @example
 * ```ts
 * import { parseIp } from "./cidr.ts";
 *
 * parseIp("::ffff:10.0.0.1"); // Uint8Array [10, 0, 0, 1]
 * parseIp("example.com"); // undefined
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  const bytes = text.includes(":") ? parseIpv6(text) : parseIpv4(text);
  return bytes && unmapped(bytes);
}

/** `ADDRESS/PREFIX` or a bare address (one host), or undefined when invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const raw = address.includes(":") ? parseIpv6(address) : parseIpv4(address);
  if (!raw) return undefined;
  const bits = raw.length * 8;
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return undefined;
  const bytes = unmapped(raw);
  // A mapped block (::ffff:10.0.0.0/104) is the IPv4 block it maps.
  const prefix = Number(prefixText) - (raw.length - bytes.length) * 8;
  return prefix < 0 ? { bytes: raw, prefix: Number(prefixText) } : { bytes, prefix };
}

/**
 * A comma-separated list of CIDR blocks; throws a `TypeError` naming the
 * first entry that is not one.
 *
 * @example
 * ```ts
 * import { cidrContains, parseCidrList } from "./cidr.ts";
 *
 * const trusted = parseCidrList("10.0.0.0/8, ::1");
 * cidrContains(trusted, "10.1.2.3"); // true
 * cidrContains(trusted, "::ffff:10.1.2.3"); // true
 * cidrContains(trusted, "192.0.2.1"); // false
 * ```
 */
export function parseCidrList(text: string): Cidr[] {
  return text.split(",").map((entry) => entry.trim()).filter(Boolean).map((entry) => {
    const cidr = parseCidr(entry);
    if (!cidr) throw new TypeError(`'${entry}' is not an IP address or CIDR block`);
    return cidr;
  });
}

/** Whether the address `bytes` (from {@link parseIp}) is in `cidr`. */
function inCidr(cidr: Cidr, bytes: Uint8Array): boolean {
  if (cidr.bytes.length !== bytes.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (cidr.bytes[whole]! & mask) === (bytes[whole]! & mask);
}

/** Whether the IP address `address` is in one of `list`; false when it is no IP address. */
export function cidrContains(list: readonly Cidr[], address: string): boolean {
  const bytes = parseIp(address);
  return bytes !== undefined && list.some((cidr) => inCidr(cidr, bytes));
}
