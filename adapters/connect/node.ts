/**
 * `node:net` sockets as {@link Conn}s: the target side on every runtime.
 * Hand-written rather than `Duplex.toWeb()`, which never reports EOF on
 * Node 20 with `allowHalfOpen` (`docs/runtimes.md`, "Node: Duplex.toWeb()
 * and half-close").
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import tls from "node:tls";
import { ChunkQueue, type QueueSource, READY, StreamViews } from "../../lib/bridge/chunks.ts";
import type { ChunkWriter, Conn, Target } from "../../lib/types.ts";
import { CONNECT_TIMEOUT_MS, HIGH_WATER_MARK, SEND_HIGH_WATER_MARK } from "../../lib/limits.ts";
import { deadlines } from "../../lib/deadlines.ts";
import { RUNTIME } from "../runtime.ts";

/** Wraps a connected socket. Bytes are not copied on the way through. */
export function socketConn(sock: net.Socket): Conn {
  return new SocketConn(sock);
}

/** Where the shared listeners below find a socket's conn. */
const CONN = Symbol("conn");
type Owned = net.Socket & { [CONN]: SocketConn };

// Classes rather than object literals with getters: V8 keeps those in
// dictionary mode, which costs memory per session (`bench/README.md`,
// "Figures behind design choices"). The socket listeners are shared
// functions rather than closures for the same reason.
class SocketConn extends StreamViews<Uint8Array, Uint8Array> implements Conn, QueueSource {
  readonly reader: ChunkQueue<Uint8Array> = new ChunkQueue(this, HIGH_WATER_MARK);
  readonly writer: SocketWriter;

  constructor(readonly sock: net.Socket) {
    super();
    this.writer = new SocketWriter(sock);
    (sock as Owned)[CONN] = this;
    sock.on("data", SocketConn.#onData);
    sock.on("end", SocketConn.#onEnd);
    sock.on("close", SocketConn.#onEnd);
    sock.on("error", SocketConn.#onError);
  }

  static #onData(this: net.Socket, chunk: Uint8Array): void {
    (this as Owned)[CONN].reader.push(chunk);
  }

  static #onEnd(this: net.Socket): void {
    (this as Owned)[CONN].reader.end();
  }

  static #onError(this: net.Socket, error: Error): void {
    (this as Owned)[CONN].reader.error(error);
  }

  close(): void {
    this.sock.destroy();
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  cancel(): void {
    // Keep reading and dropping: a socket closed with unread data sends RST,
    // which would discard bytes we still have to deliver to it.
    this.sock.removeListener("data", SocketConn.#onData);
    this.sock.resume();
  }
}

/**
 * Bun's `node:net` joins corked writes into a new buffer, a copy of every
 * 64 KiB frame; writing each piece at once costs less there
 * (`docs/runtimes.md`, "Bun: corked writes are copied").
 */
const CORK = RUNTIME !== "bun";

/** Writes to a socket; `ready` waits for a drain once past the send mark. */
export class SocketWriter<T = Uint8Array> implements ChunkWriter<T> {
  ready: Promise<void> = READY;
  #corked = false;

  constructor(readonly sock: net.Socket) {}

  write(chunk: T): Promise<void> {
    this.send(chunk as Uint8Array);
    return this.afterWrite();
  }

  /**
   * Writes `bytes`; what is written in one turn goes out in one writev (a
   * 64 KiB client message spans two socket reads and arrives as two pieces;
   * a frame is a head and a payload), except on Bun (see `CORK`). `sent` is
   * called once they have left user space (or failed).
   */
  protected send(bytes: Uint8Array, sent?: () => void): void {
    if (!this.#corked && CORK) {
      this.#corked = true;
      this.sock.cork();
      // A shared function, not a closure per writer (two per session).
      process.nextTick(SocketWriter.#uncork, this);
    }
    this.sock.write(bytes, sent);
  }

  static #uncork(writer: SocketWriter<unknown>): void {
    writer.#corked = false;
    writer.sock.uncork();
  }

  /** Makes `ready` wait for a drain if too much is queued. */
  protected afterWrite(): Promise<void> {
    // Node's own mark is 16 KiB, below one 64 KiB message: waiting for every
    // drain would leave one chunk in flight. Wait only past ours.
    if (this.sock.writableLength > SEND_HIGH_WATER_MARK && this.ready === READY) {
      // A failure sticks, as it does on an errored WritableStream.
      this.ready = settled(this.sock, "drain").then(() => {
        this.ready = READY;
      });
      this.ready.catch(() => {});
    }
    return READY;
  }

  close(): Promise<void> {
    const finished = settled(this.sock, "finish");
    this.sock.end();
    return finished;
  }

  abort(): Promise<void> {
    this.sock.destroy();
    return READY;
  }
}

/** Resolves on `event`; rejects if the socket errors or closes first. */
function settled(sock: net.Socket, event: "drain" | "finish"): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      sock.off(event, onEvent);
      sock.off("error", onError);
      sock.off("close", onClose);
    };
    const onEvent = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onClose = () => onError(new Error("Socket closed"));
    sock.on(event, onEvent);
    sock.on("error", onError);
    sock.on("close", onClose);
  });
}

/** Options for {@link connectNode}. */
export interface ConnectOptions {
  /** Give up on a connect that takes longer than this. */
  timeoutMs?: number;
  /** Extra trusted CA certificates (PEM) for TLS targets. */
  ca?: string | Uint8Array;
}

function openSocket(target: Target, options: ConnectOptions): net.Socket {
  if (target.kind === "unix") return net.connect({ path: target.path, allowHalfOpen: true });
  // A checked address (`--allow-target`) is used as is; the name stays for TLS.
  const { hostname, port } = target;
  const host = target.address ?? hostname;
  if (!target.tls) return net.connect({ host, port, allowHalfOpen: true, noDelay: true });
  // Verified like a browser would: the chain (system CAs plus `ca`) and the name.
  const ca = options.ca ? [...tls.rootCertificates, String(options.ca)] : undefined;
  const servername = net.isIP(hostname) ? undefined : hostname;
  return tls.connect({ host, port, servername, ca }).setNoDelay(true);
}

/**
 * Connects to a TCP or unix target with `node:net`.
 *
 * @example
 * ```ts
 * import { connectNode } from "./node.ts";
 *
 * const openVnc = () => connectNode({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export function connectNode(target: Target, options: ConnectOptions = {}): Promise<Conn> {
  const sock = openSocket(target, options);
  const timeoutMs = options.timeoutMs ?? CONNECT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const timer = deadlines.after(timeoutMs, () => {
      sock.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" }));
    });
    const onError = (error: Error) => {
      timer.stop();
      reject(error);
    };
    sock.once("error", onError);
    sock.once(target.kind === "tcp" && target.tls ? "secureConnect" : "connect", () => {
      timer.stop();
      if (target.kind === "tcp") sock.setKeepAlive(true);
      const conn = socketConn(sock);
      // After the conn's own listener: removing the only one would delete the
      // event's slot and put the listener table in dictionary mode (see
      // `sniff()` in adapters/server/listen.ts).
      sock.off("error", onError);
      resolve(conn);
    });
  });
}
