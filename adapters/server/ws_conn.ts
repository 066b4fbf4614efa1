/**
 * The server side of a WebSocket on a `node:net` or `node:tls` socket, on
 * all three runtimes: the 101 answer, then frames through
 * {@link FrameParser}. Binary payload goes to the bridge as views of the
 * socket's own buffers, unmasked in place (`ws` joined every 64 KiB message
 * that spanned two reads into a new buffer). Unmasked frames are refused,
 * reading pauses when the bridge is full or the client's send buffer is,
 * and sends wait for the socket to drain, which the runtimes' native servers
 * cannot all do.
 *
 * @module
 */
import { createHash, hash } from "node:crypto";
import type net from "node:net";
import { ChunkQueue, type QueueSource, READY, StreamViews } from "../../lib/bridge/chunks.ts";
import {
  closePayload,
  frameHead,
  frameInPlace,
  WHOLE_FRAME_MAX,
  wholeFrame,
} from "../../lib/protocol/server_frames.ts";
import {
  type FrameHandler,
  FrameParser,
  OP_BINARY,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
} from "../../lib/protocol/frames.ts";
import { CLOSE_ABNORMAL, CLOSE_NO_STATUS } from "../../lib/protocol/close_codes.ts";
import type { CloseInfo, WsConn } from "../../lib/types.ts";
import { CLOSE_TIMEOUT_MS, HIGH_WATER_MARK, MAX_MESSAGE_BYTES } from "../../lib/limits.ts";
import { SocketWriter } from "../connect/node.ts";
import { Deadline } from "./deadline.ts";
import { fastUnmask } from "./unmask.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const xor = fastUnmask();

/**
 * Answers an approved upgrade with 101 and returns the WebSocket. `head` is
 * what the client sent after the request head.
 *
 * @example
 * ```ts
 * import type http from "node:http";
 * import type net from "node:net";
 * import { acceptWebSocket } from "./ws_conn.ts";
 *
 * function onUpgrade(server: http.Server) {
 *   server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Uint8Array) => {
 *     const ws = acceptWebSocket(socket, req.headers["sec-websocket-key"]!, "binary", head);
 *   });
 * }
 * ```
 */
export function acceptWebSocket(
  sock: net.Socket,
  key: string,
  protocol: string,
  head: Uint8Array,
): WsConn {
  const accept = sha1Base64(key.trim() + GUID);
  sock.setTimeout(0); // no-delay was set on accept (not for unix listeners)
  sock.write(
    SWITCHING + accept + (ENDS.get(protocol) ?? `\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`),
  );
  return new SocketWsConn(sock, protocol, head);
}

const SWITCHING = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
  "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
/** The rest of the 101 after the accept value, by subprotocol. */
const ENDS = new Map([
  ["", "\r\n\r\n"],
  ["binary", "\r\nSec-WebSocket-Protocol: binary\r\n\r\n"],
  ["base64", "\r\nSec-WebSocket-Protocol: base64\r\n\r\n"],
]);
/**
 * The one-shot `crypto.hash()` where it is the faster call (Node, Bun); on
 * Deno it is slower than a `Hash` object.
 */
const sha1Base64: (text: string) => string = typeof hash === "function" && !("Deno" in globalThis)
  ? (text) => hash("sha1", text, "base64")
  : (text) => createHash("sha1").update(text).digest("base64");

/** Where the shared listeners below find a socket's WebSocket. */
const CONN = Symbol("websocket");
type Owned = net.Socket & { [CONN]: SocketWsConn };
const noop = () => {};
const EMPTY = new Uint8Array(0);

// Why reading from the client is paused, as bits: it reads while none is
// set. One place decides, so that neither condition resumes a socket the
// other has paused.
/** The bridge has not taken what was read (the reader's queue is full). */
const QUEUE_FULL = 1;
/** The client's send buffer is over the mark: it has not read what we sent, frames of our own included. */
const SEND_FULL = 2;
/** A ping came while our pong to an earlier one was still in user space. */
const PONG_WAITING = 4;
/** The parser has stopped: read on and drop, whatever else holds. */
const DROPPING = 8;

// A class, not an object literal with getters: see adapters/connect/node.ts. Its socket
// listeners are shared functions, not closures: with 10,000 sessions open,
// every closure per session is 10,000 closures.
class SocketWsConn extends StreamViews<Uint8Array | string, Uint8Array | string>
  implements WsConn, QueueSource, FrameHandler {
  readonly reader: ChunkQueue<Uint8Array | string> = new ChunkQueue(this, HIGH_WATER_MARK);
  readonly writer: WsWriter;
  readonly closed: Promise<CloseInfo>;
  onpong: (() => void) | null = null;
  #parser: FrameParser;
  /** QUEUE_FULL, SEND_FULL, PONG_WAITING and DROPPING bits: why reading is paused. */
  #holds = 0;
  /** True while a pong of ours is in user space. */
  #pongWaits = false;
  /** The payload of the pong to send once that one has left. */
  #nextPong: Uint8Array | null = null;
  /** The close frame the client sent, if any. */
  #received: CloseInfo | undefined;
  /** Set once our close frame is sent: the client has that long to answer it. */
  #deadline: Deadline | undefined;
  #resolveClosed: (info: CloseInfo) => void = noop;

  constructor(readonly sock: net.Socket, readonly protocol: string, head: Uint8Array) {
    super();
    this.writer = new WsWriter(sock, protocol === "base64");
    // Text is held whole, so it has a limit; binary is streamed, so it has none.
    this.#parser = new FrameParser(this, protocol === "base64" ? MAX_MESSAGE_BYTES : 0, xor);
    this.closed = new Promise<CloseInfo>((resolve) => (this.#resolveClosed = resolve));
    (sock as Owned)[CONN] = this;
    sock.on("close", SocketWsConn.#onClose);
    sock.on("data", SocketWsConn.#onData);
    sock.on("end", SocketWsConn.#onEnd);
    sock.on("error", noop); // "close" follows
    if (head.length > 0) this.#parser.push(head);
  }

  static #onData(this: net.Socket, chunk: Uint8Array): void {
    (this as Owned)[CONN].#parser.push(chunk);
  }

  /** The client went away without a close frame. */
  static #onEnd(this: net.Socket): void {
    (this as Owned)[CONN].reader.end();
    // Ending twice builds an error object; we may have ended after a close.
    if (!this.writableEnded) this.end();
  }

  static #onClose(this: net.Socket): void {
    const ws = (this as Owned)[CONN];
    ws.#deadline?.stop();
    ws.reader.end();
    ws.#resolveClosed(ws.#received ?? { code: CLOSE_ABNORMAL, reason: "" });
  }

  // --- WsConn ---

  close(code?: number, reason?: string): void {
    if (this.writer.closing) return;
    // Gone already: no frame to send, and no timer to keep the process up.
    if (this.sock.destroyed) return void (this.writer.closing = true);
    this.#control(OP_CLOSE, closePayload(code, reason));
    this.writer.closing = true;
    if (this.#received && !this.sock.writableEnded) this.sock.end();
    // A client that does not answer the close frame is cut off.
    this.#deadline = new Deadline(this.sock, CLOSE_TIMEOUT_MS);
  }

  abort(): void {
    this.sock.destroy();
  }

  ping(): void {
    this.#control(OP_PING, EMPTY);
  }

  /**
   * Sends a frame of our own (pong, ping, close). It counts against the
   * send mark as data does: while the client's buffer is over it, the
   * client is not read, so a client that pings and never reads cannot make
   * us queue pongs without end.
   */
  #control(opcode: number, payload: Uint8Array, sent?: () => void): boolean {
    const writer = this.writer;
    if (writer.closing || !writer.control(opcode, payload, sent)) return false;
    const ready = writer.ready;
    if (ready !== READY && !(this.#holds & SEND_FULL)) {
      this.#hold(SEND_FULL, true);
      const drained = () => this.#hold(SEND_FULL, false);
      ready.then(drained, drained);
    }
    return true;
  }

  /** Sets or clears one reason to pause; the socket reads while there is none. */
  #hold(reason: number, on: boolean): void {
    const was = this.#holds;
    const now = on ? was | reason : was & ~reason;
    this.#holds = now;
    // Pausing again is harmless, and undoes a resume from outside (the
    // upgrade resumes the socket after the head has been parsed).
    if ((now & DROPPING) === 0 && now !== 0) this.sock.pause();
    else if ((was & DROPPING) === 0 && was !== 0) this.sock.resume();
  }

  // --- QueueSource ---

  pause(): void {
    this.#hold(QUEUE_FULL, true);
  }

  resume(): void {
    this.#hold(QUEUE_FULL, false);
  }

  cancel(): void {
    // Read on and drop; a full send buffer still holds reading back.
    this.#hold(QUEUE_FULL, false);
  }

  // --- FrameHandler ---

  receiveData(bytes: Uint8Array): void {
    this.reader.push(bytes);
  }

  receiveText(message: string): void {
    this.reader.push(message);
  }

  /**
   * Answers with a pong. One pong at a time waits in user space: a ping
   * that comes before it has left only replaces the payload of the next
   * (RFC 6455 §5.5.3 allows answering the latest ping alone), and reading
   * stops until it has left, so tiny pings cannot pile up tiny writes.
   */
  receivePing(payload: Uint8Array): void {
    if (!this.#pongWaits) return this.#sendPong(payload);
    this.#nextPong = payload;
    this.#hold(PONG_WAITING, true);
  }

  #sendPong(payload: Uint8Array): void {
    this.#pongWaits = true;
    const sent = () => {
      this.#pongWaits = false;
      const next = this.#nextPong;
      this.#nextPong = null;
      if (next) this.#sendPong(next);
      else this.#hold(PONG_WAITING, false);
    };
    if (!this.#control(OP_PONG, payload, sent)) {
      this.#pongWaits = false;
      this.#nextPong = null;
      this.#hold(PONG_WAITING, false);
    }
  }

  receivePong(): void {
    this.onpong?.();
  }

  receiveClose(code: number, reason: string): void {
    this.#received = { code, reason };
    this.reader.end();
    this.#hold(DROPPING, true); // read on to the client's FIN
    // Echo the code and reason, as upstream; then close the TCP connection.
    if (!this.writer.closing) this.close(code === CLOSE_NO_STATUS ? undefined : code, reason);
    else if (!this.sock.writableEnded) this.sock.end();
  }

  protocolError(code: number, reason: string): void {
    this.reader.end();
    this.#hold(DROPPING, true); // drop what else comes
    this.close(code, reason);
    if (!this.sock.writableEnded) this.sock.end();
  }
}

/** Sends each chunk as one binary (or, in base64 mode, text) message. */
class WsWriter extends SocketWriter<Uint8Array | string> {
  /** Set once a close frame has been sent: later data is dropped. */
  closing = false;

  constructor(sock: net.Socket, readonly text: boolean) {
    super(sock);
  }

  override write(chunk: Uint8Array | string): Promise<void> {
    if (this.closing) return READY;
    const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
    this.frame(this.text ? OP_TEXT : OP_BINARY, bytes);
    return this.afterWrite();
  }

  /**
   * Writes a control frame of our own as one buffer; false if the socket
   * can no longer be written. `sent` is called once it has left user space.
   * `ready` waits for a drain past the mark, as after data.
   */
  control(opcode: number, payload: Uint8Array, sent?: () => void): boolean {
    if (!this.sock.writable) return false;
    this.send(wholeFrame(opcode, payload), sent);
    this.afterWrite();
    return true;
  }

  /** Writes one frame: in one buffer (head room, or a small payload copied) or one writev. */
  frame(opcode: number, payload: Uint8Array): void {
    if (!this.sock.writable) return;
    const whole = frameInPlace(opcode, payload);
    if (whole) return this.send(whole);
    if (payload.length <= WHOLE_FRAME_MAX) return this.send(wholeFrame(opcode, payload));
    this.send(frameHead(opcode, payload.length));
    if (payload.length > 0) this.send(payload);
  }

  override close(): Promise<void> {
    return this.ready.catch(() => {});
  }
}
