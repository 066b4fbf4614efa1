/**
 * IP addresses and CIDR blocks: parsing, matching, and the key that
 * per-address limits count under. Pure.
 *
 * @module
 */

/**
 * An address as 16 bytes (IPv4 as IPv4-mapped IPv6, `::ffff:a.b.c.d`, so
 * that a v4 block matches a v4 client on a dual-stack socket), or undefined
 * when `text` is not an IP address. A `%zone` suffix is ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIp } from "./cidr.ts";
 *
 * assert.deepEqual(parseIp("10.0.0.1"), parseIp("::ffff:10.0.0.1"));
 * assert.equal(parseIp("example.com"), undefined);
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  if (v4) return mapped(v4);
  return parseIpv6(text.replace(/%[^%]*$/, ""));
}

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^(0|[1-9]\d{0,2})$/.test(p) ? Number(p) : 256));
  return bytes.every((b) => b < 256) ? bytes : undefined;
}

function mapped(v4: number[]): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  // A dotted IPv4 tail (`::ffff:1.2.3.4`) stands for the last two groups.
  let v4: number[] | undefined;
  if (text.includes(".")) {
    const colon = text.lastIndexOf(":");
    v4 = parseIpv4(text.slice(colon + 1));
    if (colon < 0 || !v4) return undefined;
    text = `${text.slice(0, colon + 1)}0:0`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string) => (half === "" ? [] : half.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const zeros = 8 - head.length - tail.length;
  if (halves.length === 2 ? zeros < 1 : zeros !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? zeros : 0).fill("0"), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i]!)) return undefined;
    const word = parseInt(all[i]!, 16);
    out[2 * i] = word >> 8;
    out[2 * i + 1] = word & 0xff;
  }
  if (v4) out.set(v4, 12);
  return out;
}

/** A CIDR block: the network's bytes and the prefix length over 128 bits. */
export interface Cidr {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/**
 * Parses `ADDR` or `ADDR/BITS` (IPv4 or IPv6); throws a `TypeError` that
 * names the text when it is neither.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(addr);
  const v4 = parseIpv4(addr) !== undefined;
  const max = v4 ? 32 : 128;
  const bitsText = slash < 0 ? String(max) : text.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
  if (!bytes || bits < 0 || bits > max) throw new TypeError(`invalid CIDR block: '${text}'`);
  return { bytes, bits: v4 ? bits + 96 : bits };
}

/** Parses a comma-separated list of CIDR blocks (`--allow-client`). */
export function parseCidrList(text: string): Cidr[] {
  return text.split(",").map((part) => parseCidr(part.trim()));
}

/**
 * True when `addr` is an IP address inside one of `blocks`; a host name or
 * socket path is in none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inCidrs, parseCidrList } from "./cidr.ts";
 *
 * const blocks = parseCidrList("10.0.0.0/8,fd00::/8");
 * assert.ok(inCidrs("10.1.2.3", blocks));
 * assert.ok(inCidrs("::ffff:10.1.2.3", blocks));
 * assert.ok(!inCidrs("192.168.0.1", blocks));
 * ```
 */
export function inCidrs(addr: string, blocks: readonly Cidr[]): boolean {
  const bytes = parseIp(addr);
  return bytes !== undefined && blocks.some((block) => inCidr(bytes, block));
}

function inCidr(bytes: Uint8Array, { bytes: net, bits }: Cidr): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== net[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole]! & mask) === (net[whole]! & mask);
}

/**
 * The key per-address limits count under: an IPv4 address as is, an IPv6
 * address by its /64 network (one host or home usually holds a whole /64,
 * so counting single addresses would let it take 2^64 of them), anything
 * else (a socket path) as is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressKey } from "./cidr.ts";
 *
 * assert.equal(addressKey("2001:db8:1:2:a::1"), addressKey("2001:db8:1:2:b::2"));
 * assert.equal(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
 * ```
 */
export function addressKey(addr: string): string {
  const bytes = parseIp(addr);
  if (!bytes) return addr;
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return bytes.subarray(12).join(".");
  }
  const words = [];
  for (let i = 0; i < 8; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return `${words.join(":")}::/64`;
}
