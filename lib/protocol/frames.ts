/**
 * The server side of RFC 6455 framing, without I/O: the parser for client
 * frames (server frames are built by `./server_frames.ts`).
 *
 * A byte pump needs no message boundaries, so binary payload is streamed:
 * each piece is unmasked in place in the socket's own buffer and handed on
 * as a view of it, never copied or reassembled (a 64 KiB message spans two
 * 64 KiB socket reads, and joining them cost a copy of every byte), and a
 * binary message may be of any length. Only text messages (the legacy
 * base64 mode) and control frames are held whole, each in one buffer of its
 * own, so that what a client makes the parser hold is about what it sent
 * however finely it fragments, and never more than the text limit.
 *
 * @module
 */
import {
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_REASON,
  CLOSE_TOO_BIG,
  CLOSE_UNSUPPORTED,
  unknownOpcodeReason,
  validCloseCode,
} from "./close_codes.ts";
import { type Unmask, unmask } from "./unmask.ts";

/** Opcodes (RFC 6455 §5.2). */
export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** What {@link FrameParser} reports, in the order the client sent it. */
export interface FrameHandler {
  /** Binary payload as it arrives: views of the pushed chunk, unmasked. */
  receiveData(bytes: Uint8Array): void;
  /** A whole text message, UTF-8 checked. */
  receiveText(message: string): void;
  /** A ping with its payload, to be answered with a pong. */
  receivePing(payload: Uint8Array): void;
  /** A pong. */
  receivePong(): void;
  /** A close frame; `code` is 1005 when it carried none. Parsing stops. */
  receiveClose(code: number, reason: string): void;
  /** A protocol violation: close with `code` and `reason`. Parsing stops. */
  protocolError(code: number, reason: string): void;
}

const EMPTY = new Uint8Array(0);
/** The longest 64-bit length a number holds exactly: high word up to 2^21 - 1. */
const MAX_HIGH_WORD = 0x1fffff;
const utf8 = new TextDecoder("utf-8", { fatal: true });
/** The current frame's mask key as bytes, filled before each unmask (parsers take turns). */
const MASK = new Uint8Array(4);

/**
 * Parses client frames from socket chunks as they come, unmasking in place.
 * `maxTextBytes` bounds a text message; 0 refuses text frames as they start
 * (1003), before any of their payload is read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameParser } from "./frames.ts";
 *
 * const received: Uint8Array[] = [];
 * const parser = new FrameParser({
 *   receiveData: (bytes) => received.push(bytes.slice()),
 *   receiveText: (message) => console.log(message),
 *   receivePing: (payload) => console.log("ping", payload),
 *   receivePong: () => {},
 *   receiveClose: (code, reason) => console.log("close", code, reason),
 *   protocolError: (code, reason) => console.log("refuse", code, reason),
 * }, 4 * 1024 * 1024);
 * // A masked binary frame [1, 2] with mask 0: socket.on("data", (chunk) => parser.push(chunk))
 * parser.push(new Uint8Array([0x82, 0x82, 0, 0, 0, 0, 1, 2]));
 * assert.deepEqual(received, [new Uint8Array([1, 2])]);
 * ```
 */
export class FrameParser {
  /** A head that spans chunks, gathered here; most heads are read in place. */
  #partial: Uint8Array | null = null;
  #headLength = 0;
  /** The mask key's four bytes, big-endian. */
  #mask = 0;
  #phase = 0;
  /** Payload bytes left in the current frame; -1 while reading a head. */
  #remaining = -1;
  #opcode = 0;
  #fin = false;
  /** The data opcode of the message in progress, 0 when none. */
  #message = 0;
  /** The text message in progress: bytes received so far, and the lengths its heads announced. */
  #text: Uint8Array = EMPTY;
  #textLength = 0;
  #textAnnounced = 0;
  /** The control frame in progress (it may come between fragments), sized by its head. */
  #control: Uint8Array = EMPTY;
  #controlLength = 0;
  #stopped = false;

  /** `xor` replaces the built-in {@link unmask}, e.g. with a native one. */
  constructor(
    readonly handler: FrameHandler,
    readonly maxTextBytes: number,
    readonly xor: Unmask = unmask,
  ) {}

  /** Bytes the parser holds between pushes: buffers of its own, not views of chunks. */
  get held(): number {
    return (this.#partial?.length ?? 0) + this.#text.length + this.#control.length;
  }

  /** Parses `chunk`, which it may change (unmasking) and keep views of. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.#stopped) {
      if (this.#remaining < 0) {
        i = this.#readHead(chunk, i);
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - i);
      const piece = chunk.subarray(i, i + take);
      i += take;
      const mask = this.#mask;
      MASK[0] = mask >>> 24;
      MASK[1] = mask >>> 16;
      MASK[2] = mask >>> 8;
      MASK[3] = mask;
      this.xor(piece, MASK, this.#phase);
      this.#phase = (this.#phase + take) & 3;
      this.#remaining -= take;
      if (this.#opcode === OP_BINARY) this.handler.receiveData(piece);
      else if (this.#opcode === OP_TEXT) this.#addText(piece);
      else {
        this.#control.set(piece, this.#controlLength);
        this.#controlLength += take;
      }
      if (this.#remaining === 0) this.#endFrame();
    }
  }

  /** Reads a frame head from `chunk` at `i`; returns where the payload starts. */
  #readHead(chunk: Uint8Array, i: number): number {
    const left = chunk.length - i;
    if (this.#headLength === 0 && left >= 2) {
      if (!this.#checkStart(chunk[i]!, chunk[i + 1]!)) return chunk.length;
      const need = headSize(chunk[i + 1]!);
      if (left >= need) {
        this.#startFrame(chunk, i, need);
        return i + need;
      }
      (this.#partial ??= new Uint8Array(14)).set(chunk.subarray(i));
      this.#headLength = left;
      return chunk.length;
    }
    const head = (this.#partial ??= new Uint8Array(14));
    if (this.#headLength < 2) {
      while (this.#headLength < 2 && i < chunk.length) head[this.#headLength++] = chunk[i++]!;
      if (this.#headLength < 2) return i;
      if (!this.#checkStart(head[0]!, head[1]!)) return chunk.length;
    }
    const need = headSize(head[1]!);
    while (this.#headLength < need && i < chunk.length) head[this.#headLength++] = chunk[i++]!;
    if (this.#headLength < need) return i;
    this.#headLength = 0;
    this.#startFrame(head, 0, need);
    return i;
  }

  /** Takes the length and mask key from a whole head of `size` bytes at `at`. */
  #startFrame(head: Uint8Array, at: number, size: number): void {
    const len7 = head[at + 1]! & 0x7f;
    let length = len7;
    if (len7 === 126) length = (head[at + 2]! << 8) | head[at + 3]!;
    else if (len7 === 127) {
      const high = uint32(head, at + 2);
      if (high > 0x7fffffff) {
        return void this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.lengthTopBit);
      }
      if (high > MAX_HIGH_WORD) return void this.#fail(CLOSE_TOO_BIG, CLOSE_REASON.tooBig);
      length = high * 2 ** 32 + uint32(head, at + 6);
    }
    this.#mask = uint32(head, at + size - 4);
    this.#phase = 0;
    if (this.#opcode >= OP_CLOSE) {
      if (length > 125) return void this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.controlTooLong);
      this.#control = length > 0 ? new Uint8Array(length) : EMPTY;
      this.#controlLength = 0;
    } else {
      // The message continues with this frame's data type.
      this.#opcode = this.#message;
      if (this.#opcode === OP_TEXT) {
        this.#textAnnounced += length;
        if (this.#textAnnounced > this.maxTextBytes) {
          return void this.#fail(CLOSE_TOO_BIG, CLOSE_REASON.tooBig);
        }
      }
    }
    this.#remaining = length;
    if (length === 0) this.#endFrame();
  }

  /** Checks the first two head bytes; false (after failing) when they break the rules. */
  #checkStart(b0: number, b1: number): boolean {
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (b0 & 0x70) return this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.reservedBits);
    if (!(b1 & 0x80)) return this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.notMasked);
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) {
        return this.#fail(CLOSE_PROTOCOL_ERROR, unknownOpcodeReason(hex(opcode)));
      }
      if (!fin) return this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.fragmentedControl);
    } else if (opcode === OP_CONTINUATION) {
      if (!this.#message) {
        return this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.unexpectedContinuation);
      }
    } else if (opcode > OP_BINARY) {
      return this.#fail(CLOSE_PROTOCOL_ERROR, unknownOpcodeReason(hex(opcode)));
    } else if (this.#message) {
      return this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.unexpectedNewFrame);
    } else if (opcode === OP_TEXT && this.maxTextBytes === 0) {
      return this.#fail(CLOSE_UNSUPPORTED, CLOSE_REASON.textUnsupported);
    } else {
      this.#message = opcode;
      this.#textLength = this.#textAnnounced = 0;
    }
    this.#opcode = opcode;
    this.#fin = fin;
    return true;
  }

  /** Appends to the text message, growing its buffer by doubling up to what was announced. */
  #addText(piece: Uint8Array): void {
    if (this.#fin && this.#textLength === 0 && piece.length === this.#textAnnounced) {
      // The whole message in one piece, decoded before this push returns: no copy.
      this.#text = piece;
      this.#textLength = piece.length;
      return;
    }
    const length = this.#textLength + piece.length;
    if (length > this.#text.length) {
      const size = Math.min(Math.max(length, 2 * this.#text.length, 256), this.#textAnnounced);
      const grown = new Uint8Array(size);
      grown.set(this.#text.subarray(0, this.#textLength));
      this.#text = grown;
    }
    this.#text.set(piece, this.#textLength);
    this.#textLength = length;
  }

  #endFrame(): void {
    this.#remaining = -1;
    const opcode = this.#opcode;
    if (opcode < OP_CLOSE) {
      if (!this.#fin) return;
      this.#message = 0;
      if (opcode === OP_TEXT) this.#endText();
      return;
    }
    const payload = this.#control;
    this.#control = EMPTY;
    if (opcode === OP_PING) this.handler.receivePing(payload);
    else if (opcode === OP_PONG) this.handler.receivePong();
    else this.#endClose(payload);
  }

  #endText(): void {
    const bytes = this.#text.subarray(0, this.#textLength);
    this.#text = EMPTY;
    let message: string;
    try {
      message = utf8.decode(bytes);
    } catch {
      this.#fail(CLOSE_INVALID_DATA, CLOSE_REASON.invalidText);
      return;
    }
    this.handler.receiveText(message);
  }

  #endClose(payload: Uint8Array): void {
    if (payload.length === 0) {
      return this.#stop(() => this.handler.receiveClose(CLOSE_NO_STATUS, ""));
    }
    const code = payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 0;
    if (!validCloseCode(code)) {
      return void this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.invalidCloseCode);
    }
    let reason: string;
    try {
      reason = utf8.decode(payload.subarray(2));
    } catch {
      return void this.#fail(CLOSE_PROTOCOL_ERROR, CLOSE_REASON.invalidCloseText);
    }
    this.#stop(() => this.handler.receiveClose(code, reason));
  }

  #fail(code: number, reason: string): false {
    this.#stop(() => this.handler.protocolError(code, reason));
    return false;
  }

  #stop(report: () => void): void {
    this.#stopped = true;
    this.#text = this.#control = EMPTY;
    this.#partial = null;
    report();
  }
}

/** Head bytes for a client frame whose second byte is `b1` (masked). */
function headSize(b1: number): number {
  const len7 = b1 & 0x7f;
  return 6 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
}

function uint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>>
    0;
}

function hex(opcode: number): string {
  return `0x${opcode.toString(16).padStart(2, "0")}`;
}
