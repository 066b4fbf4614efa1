/**
 * Unmasking client payload in place (RFC 6455 §5.3), in plain JavaScript;
 * `adapters/server/unmask.ts` swaps in a native one where it loads.
 *
 * @module
 */

const scratch = new Uint8Array(4);
const scratch32 = new Int32Array(scratch.buffer);

/** Unmasks `bytes` in place from mask byte `phase` on; see {@link unmask}. */
export type Unmask = (bytes: Uint8Array, mask: Uint8Array, phase: number) => void;

/**
 * XORs `bytes` in place with the 4-byte `mask`, starting at mask byte
 * `phase` (the count of payload bytes before these, modulo 4). Aligned words
 * go four bytes at a time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unmask } from "./unmask.ts";
 *
 * const bytes = new Uint8Array([1, 2, 3]);
 * unmask(bytes, new Uint8Array([1, 2, 3, 4]), 0);
 * assert.deepEqual(bytes, new Uint8Array([0, 0, 0]));
 * ```
 */
export function unmask(bytes: Uint8Array, mask: Uint8Array, phase: number): void {
  const n = bytes.length;
  let i = 0;
  const lead = Math.min(n, (4 - (bytes.byteOffset & 3)) & 3);
  for (; i < lead; i++) bytes[i]! ^= mask[(phase + i) & 3]!;
  const words = (n - i) >> 2;
  if (words > 0) {
    for (let k = 0; k < 4; k++) scratch[k] = mask[(phase + i + k) & 3]!;
    const key = scratch32[0]!;
    const view = new Int32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w]! ^= key;
    i += words << 2;
  }
  for (; i < n; i++) bytes[i]! ^= mask[(phase + i) & 3]!;
}
