/**
 * One direction of the bridge: chunks from a reader, through a conversion,
 * to a writer, one at a time, each written only once the writer has room.
 *
 * @module
 */
import { READY } from "./chunks.ts";
import type { ChunkReader, ChunkWriter } from "../types.ts";

const noop = () => {};

/**
 * Moves chunks from `reader` through `convert` to `writer`, waiting for the
 * writer's `ready` before each write, until the reader is done or `convert`
 * returns undefined (`onDone`), or something fails (`onError`). Exactly one
 * of the two is called, once. Two closures per direction stay alive: the
 * helpers below are shared.
 */
export function pump<T, U>(
  reader: ChunkReader<T>,
  writer: ChunkWriter<U>,
  convert: (value: T) => U | undefined,
  onDone: () => void,
  onError: (error: unknown) => void,
): void {
  let over = false;
  const fail = (error: unknown) => {
    if (over) return;
    over = true;
    onError(error);
  };
  const onRead = ({ value, done }: ReadableStreamReadResult<T>) => {
    if (over) return;
    let chunk: U | undefined;
    try {
      chunk = done ? undefined : convert(value);
    } catch (error) {
      return fail(error);
    }
    if (chunk === undefined) {
      over = true;
      try {
        onDone();
      } catch (error) {
        onError(error);
      }
      return;
    }
    const room = writer.ready;
    if (room === READY) writeThenRead(writer, chunk, reader, onRead, fail);
    else room.then(() => over || writeThenRead(writer, chunk, reader, onRead, fail), fail);
  };
  readNext(reader, onRead, fail);
}

function readNext<T>(
  reader: ChunkReader<T>,
  onRead: (result: ReadableStreamReadResult<T>) => void,
  fail: (error: unknown) => void,
): void {
  try {
    reader.read().then(onRead, fail);
  } catch (error) {
    fail(error);
  }
}

function writeThenRead<T, U>(
  writer: ChunkWriter<U>,
  chunk: U,
  reader: ChunkReader<T>,
  onRead: (result: ReadableStreamReadResult<T>) => void,
  fail: (error: unknown) => void,
): void {
  try {
    // The built-in writers return READY: no promise per chunk for a catch.
    const written = writer.write(chunk);
    if (written !== READY) written.catch(noop);
  } catch (error) {
    return fail(error);
  }
  readNext(reader, onRead, fail);
}
