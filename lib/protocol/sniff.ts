/**
 * What a new connection speaks, from its first bytes: TLS (a ClientHello
 * starts 0x16, an SSLv2-style hello 0x80, as upstream checks), a Flash policy
 * request, or plain HTTP.
 *
 * @module
 */

/** The request a Flash player sends before opening a socket. */
export const POLICY_REQUEST = "<policy-file-request/>";

/** Upstream's answer (≤ 0.8.0), newline included, no NUL. */
export const POLICY_RESPONSE =
  '<cross-domain-policy><allow-access-from domain="*" to-ports="*" /></cross-domain-policy>\n';

/** The classification of a connection's first bytes. */
export type FirstBytes = "tls" | "policy" | "plain" | "more";

/**
 * Classifies the bytes received so far; `"more"` asks for more bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyFirstBytes } from "./sniff.ts";
 *
 * assert.equal(classifyFirstBytes(new Uint8Array([0x16, 3, 1])), "tls");
 * assert.equal(classifyFirstBytes(new TextEncoder().encode("GET / HTTP/1.1")), "plain");
 * ```
 */
export function classifyFirstBytes(bytes: Uint8Array): FirstBytes {
  if (bytes.length === 0) return "more";
  if (bytes[0] === 0x16 || bytes[0] === 0x80) return "tls";
  const n = Math.min(bytes.length, POLICY_REQUEST.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== POLICY_REQUEST.charCodeAt(i)) return "plain";
  }
  return n === POLICY_REQUEST.length ? "policy" : "more";
}
