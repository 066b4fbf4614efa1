/**
 * One client for every measurement: a {@link Link} is either a raw `node:net`
 * socket to the target or a `ws` WebSocket to a proxy in front of the same
 * target. Both sides use the same send window and byte counting, so the only
 * difference between a raw run and a proxy run is the proxy.
 *
 * @module
 */
import net from "node:net";
import WebSocket from "ws";

/** Where a link goes: straight to the target, or through a proxy. */
export interface Endpoint {
  readonly kind: "tcp" | "ws";
  readonly port: number;
}

/** Bytes a link may have handed to its socket and not yet seen written. */
const WINDOW = 1024 * 1024;
const HOST = "127.0.0.1";

/** An open connection that counts what it receives. */
export interface Link {
  /** Sends; the promise (if any) resolves once the send window has room. */
  send(chunk: Uint8Array): Promise<void> | undefined;
  /** Resolves once `total` bytes have arrived since the link opened. */
  until(total: number, ms: number): Promise<void>;
  /** The bytes received so far, when opened with `keep`. */
  readonly data: Uint8Array[];
  /** Closes cleanly and waits until the socket is gone. */
  close(ms: number): Promise<void>;
}

/** The send window and receive counter shared by both kinds of link. */
class Flow {
  received = 0;
  readonly data: Uint8Array[] = [];
  error?: Error;
  closing = false;
  private inflight = 0;
  private waiter?: { total: number; resolve: () => void; reject: (e: Error) => void };
  private room?: { resolve: () => void; reject: (e: Error) => void };

  constructor(readonly keep: boolean) {}

  add(chunk: Uint8Array): void {
    this.received += chunk.byteLength;
    if (this.keep) this.data.push(chunk);
    if (this.waiter && this.received >= this.waiter.total) {
      this.waiter.resolve();
      this.waiter = undefined;
    }
  }

  /** `write` must call its callback once the chunk is in the kernel. */
  send(
    chunk: Uint8Array,
    write: (c: Uint8Array, cb: () => void) => void,
  ): Promise<void> | undefined {
    if (this.error) return Promise.reject(this.error);
    const n = chunk.byteLength;
    this.inflight += n;
    write(chunk, () => {
      this.inflight -= n;
      if (this.room && this.inflight < WINDOW) {
        const room = this.room;
        this.room = undefined;
        room.resolve();
      }
    });
    if (this.inflight < WINDOW) return undefined;
    return new Promise((resolve, reject) => (this.room = { resolve, reject }));
  }

  until(total: number, ms: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.received >= total) return Promise.resolve();
    // One waiter at a time: every measurement waits for one reply at once.
    return timeout(
      new Promise((resolve, reject) => (this.waiter = { total, resolve, reject })),
      ms,
      () => `received ${this.received} of ${total} bytes`,
    );
  }

  fail(error: Error): void {
    if (this.closing || this.error) return;
    this.error = error;
    this.room?.reject(error);
    this.waiter?.reject(error);
  }
}

/** Rejects with `what()` if `promise` has not settled within `ms`. */
export function timeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what()}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function openTcp(port: number, keep: boolean, ms: number): Promise<Link> {
  const flow = new Flow(keep);
  const sock = net.connect({ host: HOST, port, noDelay: true });
  sock.on("data", (chunk: Buffer) => flow.add(chunk));
  sock.on("error", (error) => flow.fail(error));
  sock.on("close", () => flow.fail(new Error("TCP connection closed")));
  const link: Link = {
    send: (chunk) => flow.send(chunk, (c, cb) => sock.write(c, cb)),
    until: (total, t) => flow.until(total, t),
    data: flow.data,
    close(t) {
      flow.closing = true;
      if (sock.destroyed) return Promise.resolve();
      const gone = new Promise<void>((resolve) => sock.once("close", () => resolve()));
      sock.end();
      return timeout(gone, t, () => "TCP close").catch((error) => {
        sock.destroy();
        throw error;
      });
    },
  };
  const opened = new Promise<Link>((resolve, reject) => {
    sock.once("connect", () => resolve(link));
    sock.once("error", reject);
  });
  return timeout(opened, ms, () => `TCP connect to port ${port}`).catch((error) => {
    sock.destroy();
    throw error;
  });
}

function openWs(port: number, keep: boolean, ms: number): Promise<Link> {
  const flow = new Flow(keep);
  const ws = new WebSocket(`ws://${HOST}:${port}/`, ["binary"], {
    perMessageDeflate: false,
    handshakeTimeout: ms,
  });
  ws.on("message", (data: Buffer) => flow.add(data));
  ws.on("error", (error) => flow.fail(error));
  ws.on("close", (code) => flow.fail(new Error(`WebSocket closed with ${code}`)));
  const link: Link = {
    send: (chunk) => flow.send(chunk, (c, cb) => ws.send(c, { binary: true }, cb)),
    until: (total, t) => flow.until(total, t),
    data: flow.data,
    close(t) {
      flow.closing = true;
      if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
      const gone = new Promise<void>((resolve) => ws.once("close", () => resolve()));
      ws.close(1000);
      return timeout(gone, t, () => "WebSocket close").catch((error) => {
        ws.terminate();
        throw error;
      });
    },
  };
  const opened = new Promise<Link>((resolve, reject) => {
    ws.once("open", () => resolve(link));
    ws.once("error", reject);
    ws.once("close", (code) => reject(new Error(`WebSocket closed with ${code} while opening`)));
  });
  return timeout(opened, ms, () => `WebSocket open to port ${port}`).catch((error) => {
    ws.terminate();
    throw error;
  });
}

/** Opens a link; `keep` stores received chunks for checking. */
export function open(ep: Endpoint, ms: number, keep = false): Promise<Link> {
  return ep.kind === "tcp" ? openTcp(ep.port, keep, ms) : openWs(ep.port, keep, ms);
}
