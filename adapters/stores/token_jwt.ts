/**
 * `JWTTokenApi`: the token is a JWT whose claims `host` and `port` name the
 * target, checked with the key in the source file (upstream's formats), by
 * `jose`. Signed tokens (JWS) and encrypted ones (JWE) holding a signed JWT.
 *
 * @module
 */
import { AuthenticationError, describeError, errorText } from "../../lib/errors.ts";
import { createPrivateKey, createPublicKey } from "node:crypto";
import fsp from "node:fs/promises";
import { compactDecrypt, decodeProtectedHeader, type JWK, jwtVerify } from "jose";
import type { Logger } from "../../lib/log.ts";
import type { TokenPlugin } from "../../lib/plugins/plugins.ts";
import { decodeSymmetricKey } from "../../lib/plugins/token_jwt.ts";
import { targetFromObject } from "../../lib/plugins/token_target.ts";
import { reloading, requireSource, statSignature } from "./token_fs.ts";

/** The key in both roles: `decrypt` is missing for a public key. */
interface JwtKeys {
  readonly verify: Uint8Array | JWK;
  readonly decrypt?: Uint8Array | JWK;
}

/**
 * Reads a key file as upstream: a PEM key (RSA or EC, public or private, any
 * of PKCS#8, PKCS#1, SEC1, SPKI), else base64url text for a symmetric key.
 * Keys become JWKs without `alg`, so the token's header picks the algorithm
 * and `jose` refuses one that does not fit the key type (no HS256 with an
 * RSA public key as the secret).
 */
function keysFromText(text: string): JwtKeys {
  if (!text.includes("-----BEGIN")) {
    const secret = decodeSymmetricKey(text);
    return { verify: secret, decrypt: secret };
  }
  if (/PRIVATE KEY-----/.test(text)) {
    const key = createPrivateKey(text);
    return {
      verify: createPublicKey(key).export({ format: "jwk" }) as JWK,
      decrypt: key.export({ format: "jwk" }) as JWK,
    };
  }
  return { verify: createPublicKey(text).export({ format: "jwk" }) as JWK };
}

async function readKeys(file: string): Promise<JwtKeys> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (error) {
    throw new Error(`Cannot read "${file}": ${describeError(error)}`);
  }
  try {
    return keysFromText(text);
  } catch (error) {
    throw new Error(`Cannot use "${file}" as a JWT key: ${errorText(error)}`);
  }
}

/** The claims of a valid token; throws (a `jose` error) otherwise. */
async function verifiedClaims(token: string, keys: JwtKeys): Promise<unknown> {
  let jws = token;
  if ("enc" in decodeProtectedHeader(token)) {
    // As upstream: the plaintext of a JWE is itself a JWT signed with the same key.
    if (!keys.decrypt) throw new Error("an encrypted token needs a private or symmetric key");
    const { plaintext } = await compactDecrypt(token, keys.decrypt);
    jws = new TextDecoder().decode(plaintext);
  }
  // exp and nbf are checked with no leeway, as upstream.
  return (await jwtVerify(jws, keys.verify)).payload;
}

/** True when the token verified but `exp` or `nbf` rules it out now. */
function outOfTime(error: unknown): boolean {
  const { code, claim } = error as { code?: string; claim?: string };
  return code === "ERR_JWT_EXPIRED" ||
    (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && claim === "nbf");
}

/** Upstream's words for the two time checks, `jose`'s for the rest. */
function rejection(error: unknown): string {
  const { code, claim, message } = error as { code?: string; claim?: string; message?: string };
  if (code === "ERR_JWT_EXPIRED") return "Token has expired";
  if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && claim === "nbf") {
    return "Token can not be used yet";
  }
  return message ?? String(error);
}

/** Options for {@link jwtTokenApi}. */
export interface JwtTokenApiOptions {
  /**
   * @deprecated Unused: a rejected token is refused with an
   * `AuthenticationError` whose log text the proxy writes.
   */
  log?: Logger;
  /** Trust a check for a changed key file this long; 0 (every lookup) by default. */
  checkIntervalMs?: number;
}

/**
 * `JWTTokenApi`: source is a key file, re-read when it changes. A token that
 * does not verify or lacks `host`/`port` is refused as unknown (an
 * `AuthenticationError`, 404 "Token not found", the reason in its log text);
 * a valid one that is expired or not yet valid is refused (403, upstream's
 * reason as the status text); an unreadable key file fails the lookup (503).
 *
 * @example
 * ```ts
 * import { jwtTokenApi } from "./token_jwt.ts";
 *
 * async function lookup(token: string) {
 *   const plugin = await jwtTokenApi("/etc/websockify/jwt.pem");
 *   return await plugin.lookup(token); // { kind: "tcp", hostname: ..., port: ... }
 * }
 * ```
 */
export async function jwtTokenApi(
  source: string | undefined,
  options: JwtTokenApiOptions = {},
): Promise<TokenPlugin> {
  const file = requireSource(source, "JWTTokenApi", "KEYFILE");
  const keys = reloading({
    signature: () =>
      statSignature(file).catch((error) => {
        throw new Error(`Cannot read "${file}": ${describeError(error)}`);
      }),
    load: () => readKeys(file),
    intervalMs: options.checkIntervalMs,
  });
  await keys();
  return {
    // Keys loaded (and the key file still readable).
    ready: async () => void await keys(),
    async lookup(token) {
      const current = await keys();
      try {
        return targetFromObject(await verifiedClaims(token, current));
      } catch (error) {
        const reason = rejection(error);
        // A genuine token used at the wrong time is refused, not unknown.
        if (outOfTime(error)) {
          throw new AuthenticationError(reason, { status: 403 });
        }
        // Refused as an unknown token is (same status and text), so the
        // resolver's one log line carries the reason and the token's label.
        throw new AuthenticationError("Token not found", {
          status: 404,
          logMessage: `JWT token rejected: ${reason}`,
        });
      }
    },
  };
}
