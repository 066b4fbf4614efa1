/**
 * The WebSocket handshake policy: upstream's header checks and the
 * subprotocol choice. A pure function of the request headers.
 *
 * @module
 */
import type { HeaderReader } from "../types.ts";

/** The negotiated data encoding: `""` when the client offered nothing. */
export type Subprotocol = "binary" | "base64" | "";

/** The outcome of {@link checkHandshake}. */
export type HandshakeResult =
  | { readonly ok: true; readonly protocol: Subprotocol }
  | { readonly ok: false; readonly status: 400; readonly reason: string };

/**
 * Chooses the subprotocol from a `Sec-WebSocket-Protocol` header value.
 * `binary` wins anywhere in the list; `base64` alone selects the legacy text
 * encoding; no header selects plain binary without a protocol header;
 * anything else is refused (undefined).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectSubprotocol } from "./handshake.ts";
 *
 * assert.equal(selectSubprotocol("base64, binary"), "binary");
 * assert.equal(selectSubprotocol(null), "");
 * assert.equal(selectSubprotocol("chat"), undefined);
 * ```
 */
export function selectSubprotocol(header: string | null): Subprotocol | undefined {
  if (header === "binary") return "binary"; // what noVNC sends
  if (header === null || header.trim() === "") return "";
  const offered = header.split(",").map((p) => p.trim());
  if (offered.includes("binary")) return "binary";
  if (offered.includes("base64")) return "base64";
  return undefined;
}

/**
 * Applies upstream's handshake checks, in upstream's order, with its texts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkHandshake } from "./handshake.ts";
 *
 * assert.deepEqual(checkHandshake(new Headers({ "sec-websocket-key": "x" })), {
 *   ok: false,
 *   status: 400,
 *   reason: "Missing Sec-WebSocket-Version header",
 * });
 * ```
 */
export function checkHandshake(headers: HeaderReader): HandshakeResult {
  const version = headers.get("sec-websocket-version");
  if (version === null) return refuse("Missing Sec-WebSocket-Version header");
  if (!VERSIONS.includes(version.trim())) {
    return refuse(`Unsupported protocol version ${version}`);
  }
  if (headers.get("sec-websocket-key") === null) {
    return refuse("Missing Sec-WebSocket-Key header");
  }
  const protocol = selectSubprotocol(headers.get("sec-websocket-protocol"));
  if (protocol === undefined) return refuse("Invalid protocol selected");
  return { ok: true, protocol };
}

const VERSIONS = ["7", "8", "13"];

function refuse(reason: string): HandshakeResult {
  return { ok: false, status: 400, reason };
}
