/**
 * The pure half of `JWTTokenApi`: reading a symmetric key file as upstream
 * does. Verification itself is in `adapters/stores/token_jwt.ts`.
 *
 * @module
 */

/**
 * Decodes a symmetric key file as upstream's `JWK(kty="oct", k=text)`: the
 * text is base64url (standard base64 also accepted, as Python's decoder
 * does), padding optional, white space ignored. The decoded bytes are the
 * HMAC (or AES) key, so existing upstream key files keep validating. Throws
 * {@link SyntaxError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSymmetricKey } from "./token_jwt.ts";
 *
 * assert.equal(decodeSymmetricKey("secret_sauce\n").length, 9); // upstream's test fixture
 * ```
 */
export function decodeSymmetricKey(text: string): Uint8Array {
  const b64 = text.replace(/\s+/g, "").replace(/=+$/, "").replaceAll("-", "+").replaceAll("_", "/");
  if (b64 === "" || !/^[A-Za-z0-9+/]+$/.test(b64) || b64.length % 4 === 1) {
    throw new SyntaxError("Cannot read the key: neither a PEM key nor base64url text");
  }
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
