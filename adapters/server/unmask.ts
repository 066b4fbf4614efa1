/**
 * Unmasking with `bufferutil` (an optional dependency) where its native
 * build loads: several times faster than the word loop in
 * `lib/protocol/frames.ts` on all three runtimes (`bench/README.md`, "Figures
 * behind design choices"). Deno without
 * `--allow-ffi` gets `bufferutil`'s byte loop, which is detected and skipped.
 *
 * @module
 */
import { createRequire } from "node:module";
import { type Unmask, unmask } from "../../lib/protocol/unmask.ts";

type Native = (bytes: Uint8Array, mask: Uint8Array) => void;

/** Below this many bytes the call into native code costs more than it saves. */
const NATIVE_MIN_BYTES = 256;

function loadNative(): Native | undefined {
  try {
    const require = createRequire(import.meta.url);
    const native = require("bufferutil") as { unmask: Native };
    const fallback = require("bufferutil/fallback.js") as { unmask: Native };
    return native.unmask === fallback.unmask ? undefined : native.unmask;
  } catch {
    return undefined;
  }
}

/**
 * The fastest unmask this process can use.
 *
 * @example
 * ```ts
 * import { FrameParser, type FrameHandler } from "../../lib/protocol/frames.ts";
 * import { fastUnmask } from "./unmask.ts";
 *
 * const parse = (handler: FrameHandler) => new FrameParser(handler, 4 * 1024 * 1024, fastUnmask());
 * ```
 */
export function fastUnmask(): Unmask {
  const native = loadNative();
  if (!native) return unmask;
  const rotated = new Uint8Array(4);
  return (bytes, mask, phase) => {
    if (bytes.length < NATIVE_MIN_BYTES) return unmask(bytes, mask, phase);
    if (phase === 0) return native(bytes, mask);
    for (let k = 0; k < 4; k++) rotated[k] = mask[(phase + k) & 3]!;
    native(bytes, rotated);
  };
}
