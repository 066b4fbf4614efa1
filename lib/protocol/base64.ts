/**
 * Base64 for the legacy `base64` subprotocol, without `Buffer` so that
 * `lib/` stays runtime-neutral. Only legacy clients pay for it.
 *
 * @module
 */

const STEP = 0x8000; // bytes per String.fromCharCode call, under arg limits

/** Encodes bytes as base64 text. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += STEP) {
    binary += String.fromCharCode(...bytes.subarray(i, i + STEP));
  }
  return btoa(binary);
}

/** Decodes base64 text; throws a `SyntaxError` on malformed input. */
export function decodeBase64(text: string): Uint8Array {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new SyntaxError("Cannot decode base64 message");
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
