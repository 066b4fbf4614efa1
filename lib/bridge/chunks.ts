/**
 * Light readers and writers for adapters whose sockets push data (`node:net`,
 * `ws`). A pair of Web Streams with their reader and writer per session
 * cost about as much as the rest of an idle session (`bench/README.md`,
 * "Figures behind design choices"); these cost a few hundred bytes and one
 * promise per chunk.
 * Adapters still offer `readable` and `writable`, made on first use.
 *
 * @module
 */
import type { ChunkReader, ChunkWriter } from "../types.ts";

/** What a {@link ChunkQueue} asks of its socket. */
export interface QueueSource {
  /** Stop reading: the queue is full. */
  pause(): void;
  /** Read again: the queue has drained below its mark. */
  resume(): void;
  /** The reader is gone: drop what comes (the socket keeps reading). */
  cancel(): void;
}

const DONE: ReadableStreamReadResult<never> = { done: true, value: undefined };
/** The queue whose read is creating its promise (the executor runs synchronously). */
let capturing: ChunkQueue<never> | null = null;

/** A promise that is already resolved, for writers with room. */
export const READY: Promise<void> = Promise.resolve();

/**
 * Chunks pushed by a socket, read one at a time. Pauses the socket while
 * `highWaterMark` bytes (or characters) are queued.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChunkQueue } from "./chunks.ts";
 *
 * const calls: string[] = [];
 * const queue = new ChunkQueue<Uint8Array>({
 *   pause: () => calls.push("pause"),
 *   resume: () => calls.push("resume"),
 *   cancel: () => {},
 * }, 4);
 * queue.push(new Uint8Array(4)); // from the socket's "data" event: full, so it pauses
 * const { value } = await queue.read(); // drained below the mark: resumes
 * assert.equal(value?.length, 4);
 * assert.deepEqual(calls, ["pause", "resume"]);
 * ```
 */
export class ChunkQueue<T extends Uint8Array | string> implements ChunkReader<T> {
  #chunks: T[] = [];
  #head = 0;
  #size = 0;
  #paused = false;
  #ended = false;
  #error: unknown = undefined;
  // The pending read's settle functions, taken by `#capture` below: no
  // closures per read.
  #resolve: ((result: ReadableStreamReadResult<T>) => void) | null = null;
  #reject: ((error: unknown) => void) | null = null;

  constructor(readonly source: QueueSource, readonly highWaterMark: number) {}

  /** True once the reader has cancelled or the stream has ended or failed. */
  get closed(): boolean {
    return this.#ended;
  }

  /** Adds a chunk from the socket. Ignored after end, error or cancel. */
  push(chunk: T): void {
    if (this.#ended) return;
    const resolve = this.#resolve;
    if (resolve) {
      this.#resolve = this.#reject = null;
      return resolve({ done: false, value: chunk });
    }
    this.#chunks.push(chunk);
    this.#size += sizeOf(chunk);
    if (this.#size >= this.highWaterMark && !this.#paused) {
      this.#paused = true;
      this.source.pause();
    }
  }

  /** The socket has ended: reads return what is queued, then done. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#settle(DONE);
  }

  /** The socket failed: the next read rejects with `error`. */
  error(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#chunks.length = this.#head = 0;
    const reject = this.#reject;
    this.#resolve = this.#reject = null;
    reject?.(error);
  }

  read(): Promise<ReadableStreamReadResult<T>> {
    if (this.#head < this.#chunks.length) {
      const value = this.#chunks[this.#head]!;
      this.#chunks[this.#head++] = undefined as unknown as T;
      if (this.#head === this.#chunks.length) this.#chunks.length = this.#head = 0;
      this.#size -= sizeOf(value);
      if (this.#paused && this.#size < this.highWaterMark && !this.#ended) {
        this.#paused = false;
        this.source.resume();
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(DONE);
    capturing = this as unknown as ChunkQueue<never>;
    return new Promise(ChunkQueue.#capture);
  }

  cancel(): Promise<void> {
    if (!this.#ended) {
      this.#ended = true;
      this.source.cancel();
    }
    this.#chunks.length = this.#head = this.#size = 0;
    this.#settle(DONE);
    return READY;
  }

  /** Resolves a pending read with `result`. */
  #settle(result: ReadableStreamReadResult<T>): void {
    const resolve = this.#resolve;
    this.#resolve = this.#reject = null;
    resolve?.(result);
  }

  /** The executor of every read's promise: runs at once, on `capturing`. */
  static #capture(
    resolve: (result: ReadableStreamReadResult<never>) => void,
    reject: (error: unknown) => void,
  ): void {
    capturing!.#resolve = resolve;
    capturing!.#reject = reject;
    capturing = null;
  }
}

function sizeOf(chunk: Uint8Array | string): number {
  return typeof chunk === "string" ? chunk.length : chunk.byteLength;
}

/** A `ReadableStream` over a reader, for code that wants the stream. */
export function readableFrom<T>(reader: ChunkReader<T>): ReadableStream<T> {
  return new ReadableStream<T>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: () => reader.cancel(),
  }, { highWaterMark: 0 });
}

/** A `WritableStream` over a writer, for code that wants the stream. */
export function writableFrom<T>(writer: ChunkWriter<T>): WritableStream<T> {
  return new WritableStream<T>({
    async write(chunk) {
      await writer.ready;
      await writer.write(chunk);
    },
    close: () => writer.close(),
    abort: (reason) => writer.abort(reason),
  });
}

/**
 * Gives an adapter's connection `readable` and `writable`, made from its
 * `reader` and `writer` on first use.
 *
 * @example
 * ```ts
 * import type { ChunkReader, ChunkWriter } from "../types.ts";
 * import { StreamViews } from "./chunks.ts";
 *
 * class MyConn extends StreamViews<Uint8Array, Uint8Array> {
 *   constructor(
 *     readonly reader: ChunkReader<Uint8Array>,
 *     readonly writer: ChunkWriter<Uint8Array>,
 *   ) {
 *     super();
 *   }
 * }
 * ```
 */
export abstract class StreamViews<R, W> {
  abstract readonly reader: ChunkReader<R>;
  abstract readonly writer: ChunkWriter<W>;
  #readable?: ReadableStream<R>;
  #writable?: WritableStream<W>;

  get readable(): ReadableStream<R> {
    return this.#readable ??= readableFrom(this.reader);
  }

  get writable(): WritableStream<W> {
    return this.#writable ??= writableFrom(this.writer);
  }
}
