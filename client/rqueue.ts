/**
 * The receive queue behind {@link Websock}: one growable byte buffer with a
 * read index. Reads advance the index; appends compact (move the unread bytes
 * to the front) before they grow, so no read shifts an array.
 *
 * @module
 */

const MIN_CAPACITY = 4096;

/**
 * Bytes received and not yet read, with big-endian readers.
 *
 * @example
 * ```ts
 * const q = new ReceiveQueue();
 * q.push(new Uint8Array([0x12, 0x34, 0x41]));
 * q.shift16(); // 0x1234
 * q.shiftStr(1); // "A"
 * ```
 */
export class ReceiveQueue {
  #buf = new Uint8Array(MIN_CAPACITY);
  #start = 0; // read index
  #end = 0; // write index

  /** Unread bytes. */
  get length(): number {
    return this.#end - this.#start;
  }

  /** Bytes the buffer holds before it must compact or grow. */
  get capacity(): number {
    return this.#buf.length;
  }

  /** Appends `bytes`, compacting or growing the buffer as needed. */
  push(bytes: Uint8Array): void {
    if (this.#end + bytes.length > this.#buf.length) this.#makeRoom(bytes.length);
    this.#buf.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** Drops read bytes, then doubles the buffer until `more` bytes fit. */
  #makeRoom(more: number): void {
    const live = this.length;
    let size = this.#buf.length;
    while (live + more > size) size *= 2;
    const from = this.#buf.subarray(this.#start, this.#end);
    if (size === this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(size);
      grown.set(from);
      this.#buf = grown;
    }
    this.#start = 0;
    this.#end = live;
  }

  /** Throws unless `n` bytes are unread. */
  #need(n: number): void {
    if (n > this.length) {
      throw new RangeError(`receive queue underflow: want ${n} bytes, have ${this.length}`);
    }
  }

  /** The next byte, left in the queue. */
  peek8(): number {
    this.#need(1);
    return this.#buf[this.#start]!;
  }

  /** Reads one byte. */
  shift8(): number {
    this.#need(1);
    return this.#buf[this.#start++]!;
  }

  /** Reads a big-endian unsigned 16-bit number. */
  shift16(): number {
    this.#need(2);
    const b = this.#buf, i = this.#start;
    this.#start += 2;
    return (b[i]! << 8) | b[i + 1]!;
  }

  /** Reads a big-endian unsigned 32-bit number. */
  shift32(): number {
    this.#need(4);
    const b = this.#buf, i = this.#start;
    this.#start += 4;
    // `* 2 ** 24`, not `<< 24`: keeps values >= 2^31 positive.
    return b[i]! * 2 ** 24 + ((b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!);
  }

  /** Reads `len` bytes (all by default) as a copy. */
  shiftBytes(len: number = this.length): Uint8Array {
    this.#need(len);
    this.#start += len;
    return this.#buf.slice(this.#start - len, this.#start);
  }

  /** Reads `len` bytes (all by default) as a string of one char per byte (Latin-1). */
  shiftStr(len: number = this.length): string {
    const bytes = this.shiftBytes(len);
    let out = "";
    // Chunked: String.fromCharCode takes a bounded argument count.
    for (let i = 0; i < bytes.length; i += 0x8000) {
      out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return out;
  }

  /**
   * True when fewer than `num` bytes are unread: the caller must wait for
   * more. Then it first steps the read index back `goback` bytes, so a
   * half-read message is read again from its start next time.
   */
  wait(num: number, goback = 0): boolean {
    if (this.length >= num) return false;
    if (goback) {
      if (goback > this.#start) throw new RangeError(`cannot go back ${goback} bytes`);
      this.#start -= goback;
    }
    return true;
  }

  /** Forgets everything. */
  clear(): void {
    this.#start = this.#end = 0;
  }
}
