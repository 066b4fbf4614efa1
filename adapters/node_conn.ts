/**
 * `node:net` sockets as {@link Conn}s: the target side on every runtime.
 * Hand-written rather than `Duplex.toWeb()`, which never reports EOF on
 * Node 20 with `allowHalfOpen` (runtimes.md T13).
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import type { Conn, Target } from "../lib/types.ts";
import { HIGH_WATER_MARK, SEND_HIGH_WATER_MARK } from "./limits.ts";

/** Wraps a connected socket. Bytes are not copied on the way through. */
export function socketConn(sock: net.Socket): Conn {
  let done = false;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      const finish = (error?: Error) => {
        if (done) return;
        done = true;
        if (error) controller.error(error);
        else controller.close();
      };
      sock.on("data", (chunk: Uint8Array) => {
        controller.enqueue(chunk);
        if ((controller.desiredSize ?? 1) <= 0) sock.pause();
      });
      sock.on("end", () => finish());
      sock.on("error", finish);
      sock.on("close", () => finish());
    },
    pull() {
      sock.resume();
    },
    cancel() {
      done = true;
      // Keep reading and dropping: a socket closed with unread data sends RST,
      // which would discard bytes we still have to deliver to it.
      sock.removeAllListeners("data");
      sock.resume();
    },
  }, { highWaterMark: HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      sock.write(chunk);
      // Node's own mark is 16 KiB, below one 64 KiB message: waiting for every
      // drain would leave one chunk in flight. Wait only past ours.
      if (sock.writableLength > SEND_HIGH_WATER_MARK) return settled(sock, "drain");
    },
    close() {
      const finished = settled(sock, "finish");
      sock.end();
      return finished;
    },
    abort() {
      sock.destroy();
    },
  });

  return { readable, writable, close: () => sock.destroy() };
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
  const { hostname: host, port } = target;
  if (!target.tls) return net.connect({ host, port, allowHalfOpen: true, noDelay: true });
  // Verified like a browser would: the chain (system CAs plus `ca`) and the name.
  const ca = options.ca ? [...tls.rootCertificates, String(options.ca)] : undefined;
  const servername = net.isIP(host) ? undefined : host;
  return tls.connect({ host, port, servername, ca }).setNoDelay(true);
}

/**
 * Connects to a TCP or unix target with `node:net`.
 *
 * @example
 * ```ts
 * const conn = await connectNode({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export function connectNode(target: Target, options: ConnectOptions = {}): Promise<Conn> {
  const sock = openSocket(target, options);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    sock.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    sock.once(target.kind === "tcp" && target.tls ? "secureConnect" : "connect", () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      if (target.kind === "tcp") sock.setKeepAlive(true);
      resolve(socketConn(sock));
    });
  });
}
