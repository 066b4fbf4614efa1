/**
 * A strict parser for the one request head that matters most: a WebSocket
 * upgrade that arrived whole in the connection's first bytes. Adapters answer
 * it without an HTTP server: `node:http` kept more heap per open session (it
 * replaces socket methods with closures, which turns the socket into a
 * dictionary) and took a large share of the Node proxy's handshake CPU
 * (`bench/README.md`, "Figures behind design choices"). Anything unusual is not parsed at all: the adapter
 * hands those bytes to its HTTP server, which answers them as before.
 *
 * @module
 */
import { MAX_HEAD_BYTES, MAX_HEADERS } from "../limits.ts";
import type { HeaderReader, UpgradeRequest } from "../types.ts";

/** A WebSocket upgrade request head. */
export interface UpgradeHead {
  /** The request target, starting with `/`. */
  readonly path: string;
  /** The `Host` header, if any. */
  readonly host: string | undefined;
  /** Header name/value pairs in the order received, names as sent. */
  readonly headers: [string, string][];
  /** The header names in lower case, in the same order. */
  readonly names: string[];
  /** The bytes of the head, blank line included: what follows is frames. */
  readonly length: number;
}

const REQUEST_LINE = /^GET (\/[\x21-\x7e]*) HTTP\/1\.1$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x20-\x7e\t]*?)[ \t]*$/;
/** Headers whose presence makes the request unusual enough for the full server. */
const UNUSUAL = new Set(["content-length", "transfer-encoding"]);
const decoder = new TextDecoder();

/**
 * Parses `bytes` as a complete `GET ... HTTP/1.1` request head asking to
 * upgrade to `websocket`; undefined for anything else (incomplete, another
 * method or version, non-ASCII, folded or malformed lines, a body, two Host
 * headers, more than {@link MAX_HEADERS} header lines, no Upgrade).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseUpgradeHead } from "./upgrade_head.ts";
 *
 * const bytes = new TextEncoder().encode(
 *   "GET /?token=a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
 * );
 * assert.equal(parseUpgradeHead(bytes)?.path, "/?token=a");
 * ```
 */
export function parseUpgradeHead(bytes: Uint8Array): UpgradeHead | undefined {
  const end = headEnd(bytes);
  if (end < 0) return undefined;
  const lines = decoder.decode(bytes.subarray(0, end - 4)).split("\r\n");
  if (lines.length > MAX_HEADERS + 1) return undefined;
  const path = REQUEST_LINE.exec(lines[0]!)?.[1];
  if (path === undefined) return undefined;
  const headers: [string, string][] = [];
  const names: string[] = [];
  let host: string | undefined;
  let upgrade = false;
  let connection = false;
  for (let i = 1; i < lines.length; i++) {
    const match = HEADER_LINE.exec(lines[i]!);
    if (!match) return undefined;
    const name = match[1]!;
    const value = match[2]!;
    const lower = name.toLowerCase();
    if (UNUSUAL.has(lower)) return undefined;
    if (lower === "host") {
      if (host !== undefined) return undefined;
      host = value;
    } else if (lower === "upgrade") {
      upgrade = value.toLowerCase() === "websocket";
    } else if (lower === "connection") {
      // Runtimes' node:http split a list with tabs in it differently: leave it to them.
      if (value.includes("\t")) return undefined;
      connection ||= value.split(",").some((token) => token.trim().toLowerCase() === "upgrade");
    }
    headers.push([name, value]);
    names.push(lower);
  }
  return upgrade && connection ? { path, host, headers, names, length: end } : undefined;
}

/** The offset just past the first CRLFCRLF, or -1 if there is none or a non-ASCII byte comes first. */
function headEnd(bytes: Uint8Array): number {
  const n = Math.min(bytes.length, MAX_HEAD_BYTES);
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (b >= 0x80) return -1;
    if (b === 10 && i >= 3 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

/**
 * A parsed upgrade head as an {@link UpgradeRequest}: headers are read from
 * the parsed pairs, and the fetch `Request` is built only if asked for.
 * `url` is the head's absolute URL, checked by the caller.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HeadRequest, parseUpgradeHead } from "./upgrade_head.ts";
 *
 * const bytes = new TextEncoder().encode(
 *   "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-A: 1\r\n\r\n",
 * );
 * const req = new HeadRequest(parseUpgradeHead(bytes)!, "http://localhost/");
 * assert.equal(req.headers.get("x-a"), "1");
 * assert.equal(req.request().headers.get("X-A"), "1");
 * ```
 */
export class HeadRequest implements UpgradeRequest, HeaderReader {
  readonly method = "GET";
  #request: Request | undefined;

  constructor(readonly head: UpgradeHead, readonly url: string) {}

  get headers(): HeaderReader {
    return this;
  }

  get(name: string): string | null {
    const names = this.head.names;
    const lower = name.toLowerCase();
    let found = -1;
    for (let i = 0; i < names.length; i++) {
      if (names[i] !== lower) continue;
      // Repeated: joined as this runtime's `Headers` joins them.
      if (found >= 0) return this.request().headers.get(name);
      found = i;
    }
    return found < 0 ? null : this.head.headers[found]![1];
  }

  request(): Request {
    return this.#request ??= new Request(this.url, { method: "GET", headers: this.head.headers });
  }
}

/**
 * A fetch `Request` as an {@link UpgradeRequest}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { upgradeRequestOf } from "./upgrade_head.ts";
 *
 * const req = new Request("http://h/", { headers: { upgrade: "websocket" } });
 * assert.equal(upgradeRequestOf(req).headers.get("Upgrade"), "websocket");
 * ```
 */
export function upgradeRequestOf(req: Request): UpgradeRequest {
  return { method: req.method, url: req.url, headers: req.headers, request: () => req };
}
