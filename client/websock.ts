/**
 * `Websock`: a WebSocket to a websockify proxy seen as a TCP byte stream, in
 * the spirit of noVNC's `websock.js`. Received bytes go to a receive queue;
 * the `message` hook only says that more arrived, and the `rQ*` methods read
 * them. Speaks the `binary` subprotocol, and the legacy `base64` one (base64
 * text frames both ways) when that is what the server picked.
 *
 * @example
 * ```ts
 * import { Websock } from "./websock.ts";
 *
 * const ws = new Websock();
 * ws.on("open", () => ws.sendString("HELO example.org\r\n"));
 * ws.on("message", () => {
 *   if (ws.rQwait("reply code", 3)) return; // wait for 3 bytes
 *   console.log(ws.rQshiftStr(3));
 * });
 * ws.open("ws://localhost:6080/");
 * ```
 *
 * @module
 */
import { ReceiveQueue } from "./rqueue.ts";

export { ReceiveQueue } from "./rqueue.ts";

/** The part of the browser's `WebSocket` that {@link Websock} uses. */
export interface SocketLike {
  binaryType: string;
  readonly protocol: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** Makes the socket for {@link Websock.open}; the default is `new WebSocket`. */
export type SocketFactory = (uri: string, protocols: string[]) => SocketLike;

/** How a connection ended. */
export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** The hooks {@link Websock.on} sets. */
export interface WebsockHandlers {
  open: () => void;
  /** More bytes are queued: read them with the `rQ*` methods. */
  message: () => void;
  close: (info: CloseInfo) => void;
  error: (error: unknown) => void;
}

const OPEN = 1;
const noop = () => {};

function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** A byte stream over a WebSocket through websockify. */
export class Websock {
  readonly #rQ = new ReceiveQueue();
  readonly #factory: SocketFactory;
  #ws: SocketLike | null = null;
  #base64 = false;
  #on: WebsockHandlers = { open: noop, message: noop, close: noop, error: noop };

  /** `createSocket` replaces `new WebSocket(uri, protocols)`, e.g. in tests. */
  constructor(options: { createSocket?: SocketFactory } = {}) {
    this.#factory = options.createSocket ??
      ((uri, protocols) => new WebSocket(uri, protocols) as unknown as SocketLike);
  }

  /** Sets the one handler for `event` (a later call replaces it). */
  on<K extends keyof WebsockHandlers>(event: K, handler: WebsockHandlers[K]): void {
    this.#on[event] = handler;
  }

  /** The subprotocol the server picked: `"binary"`, `"base64"` or `""`. */
  get protocol(): string {
    return this.#ws?.protocol ?? "";
  }

  /** True while the socket is open. */
  get isOpen(): boolean {
    return this.#ws?.readyState === OPEN;
  }

  /** Connects to `uri` (`ws://` or `wss://`), offering `protocols`. */
  open(uri: string, protocols: string[] = ["binary"]): void {
    this.#drop();
    this.#rQ.clear();
    const ws = this.#factory(uri, protocols);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.#base64 = ws.protocol === "base64";
      this.#on.open();
    };
    ws.onmessage = (ev) => this.#receive(ev.data);
    ws.onclose = (ev) => {
      if (this.#ws === ws) this.#ws = null;
      this.#on.close({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    };
    ws.onerror = (ev) => this.#on.error(ev);
    this.#ws = ws;
  }

  /** Starts the closing handshake; the `close` hook fires when it is done. */
  close(code = 1000, reason = ""): void {
    const ws = this.#ws;
    if (!ws) return;
    ws.onmessage = noop; // what arrives after close() is not wanted
    ws.close(code, reason);
  }

  /** Closes the current socket silently: a new one replaces it. */
  #drop(): void {
    const ws = this.#ws;
    if (!ws) return;
    ws.onopen =
      ws.onmessage =
      ws.onclose =
      ws.onerror =
        noop;
    ws.close();
    this.#ws = null;
  }

  #receive(data: unknown): void {
    let bytes: Uint8Array;
    try {
      if (typeof data === "string") {
        if (!this.#base64) throw new TypeError("text frame on a binary connection");
        bytes = fromBase64(data);
      } else if (data instanceof ArrayBuffer) {
        bytes = new Uint8Array(data);
      } else if (ArrayBuffer.isView(data)) {
        bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      } else {
        throw new TypeError("unexpected message type");
      }
    } catch (error) {
      this.#on.error(error);
      return;
    }
    if (bytes.length === 0) return;
    this.#rQ.push(bytes);
    this.#on.message();
  }

  /** Sends bytes: a binary frame, or base64 text on a `base64` connection. */
  send(bytes: Uint8Array | readonly number[]): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) throw new Error("Websock is not open");
    const data = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    ws.send(this.#base64 ? toBase64(data) : data);
  }

  /** Sends `str` encoded as UTF-8. */
  sendString(str: string): void {
    this.send(new TextEncoder().encode(str));
  }

  /** Unread bytes in the receive queue. */
  rQlen(): number {
    return this.#rQ.length;
  }

  /** The next byte, not consumed. */
  rQpeek8(): number {
    return this.#rQ.peek8();
  }

  /** Reads one byte. */
  rQshift8(): number {
    return this.#rQ.shift8();
  }

  /** Reads a big-endian 16-bit number. */
  rQshift16(): number {
    return this.#rQ.shift16();
  }

  /** Reads a big-endian 32-bit number (unsigned). */
  rQshift32(): number {
    return this.#rQ.shift32();
  }

  /** Reads `len` bytes (all by default) as one char per byte, like `websock.js`. */
  rQshiftStr(len?: number): string {
    return this.#rQ.shiftStr(len);
  }

  /** Reads `len` bytes (all by default) as a copy. */
  rQshiftBytes(len?: number): Uint8Array {
    return this.#rQ.shiftBytes(len);
  }

  /**
   * True when fewer than `num` bytes are queued (wait for the next `message`);
   * then the read index first steps back `goback` bytes. `msg` names what is
   * awaited, for debugging.
   *
   * @example
   * ```ts
   * const type = ws.rQshift8();
   * if (ws.rQwait("length after type", 2, 1)) return; // re-read `type` later
   * ```
   */
  rQwait(msg: string, num: number, goback?: number): boolean {
    void msg;
    return this.#rQ.wait(num, goback);
  }
}
