/**
 * Keeps freed heap for the next socket reads. glibc gives the top of its heap
 * back to the kernel once more than 128 KiB is free there (M_TRIM_THRESHOLD).
 * Node reads every socket into a fresh 64 KiB malloc'd buffer, and V8 frees
 * those in large batches, so under load the heap shrinks and grows
 * again and the kernel page-faults every page of every read, which cost the
 * Node proxy several times the CPU per uploaded MiB (`bench/README.md`,
 * "Figures behind design choices"). glibc raises both thresholds when it frees a
 * chunk it had mmapped (mmap to the chunk's size, trim to twice that), so one
 * such chunk lets the heap keep up to 64 MiB of freed memory.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { RUNTIME } from "../runtime.ts";

/** The largest chunk glibc counts for its dynamic threshold (32 MiB on 64-bit), less slack. */
const CHUNK_BYTES = 32 * 1024 * 1024 - 64 * 1024;

/**
 * Raises glibc's trim threshold, once per process, on Node; harmless with
 * other C libraries. The chunk is never touched, so it never becomes
 * resident, and V8 frees it at its first collection.
 *
 * @example
 * ```ts
 * import { keepFreedHeap } from "./malloc.ts";
 *
 * keepFreedHeap(); // at start-up, before serving
 * ```
 */
export function keepFreedHeap(): void {
  // Deno and Bun allocate array buffers elsewhere (measured: no change there).
  if (RUNTIME !== "node") return;
  Buffer.allocUnsafeSlow(CHUNK_BYTES);
}
