/**
 * A raw WebSocket client over `node:net` for what normal clients refuse to
 * do: unmasked frames, text frames, bare pings, not answering pings, not
 * reading at all. Frames are built and parsed by hand, as RFC 6455 §5.2.
 *
 * @module
 */
import net from "node:net";
import type { FrameHandler } from "../lib/protocol/frames.ts";

/** A parsed server frame. */
export interface Frame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/**
 * Builds one frame; client frames are masked unless `mask` is false, with
 * `key` if given (four bytes), else a random one.
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  { mask = true, fin = true, key }: { mask?: boolean; fin?: boolean; key?: Uint8Array } = {},
): Uint8Array {
  const len = payload.byteLength;
  const extra = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = new Uint8Array(2 + extra + (mask ? 4 : 0));
  const view = new DataView(head.buffer);
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = (mask ? 0x80 : 0) | (extra === 0 ? len : extra === 2 ? 126 : 127);
  if (extra === 2) view.setUint16(2, len);
  if (extra === 8) view.setBigUint64(2, BigInt(len));
  const body = new Uint8Array(payload);
  if (mask) {
    const bytes = key ?? crypto.getRandomValues(new Uint8Array(4));
    head.set(bytes, 2 + extra);
    for (let i = 0; i < body.length; i++) body[i]! ^= bytes[i & 3]!;
  }
  return Buffer.concat([head, body]);
}

/** A close frame payload: code then UTF-8 reason. */
export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

/** A raw client after a successful or refused handshake. */
export interface RawClient {
  readonly sock: net.Socket;
  /** The response head (status line and headers). */
  readonly head: string;
  /** The status code of the handshake response. */
  readonly status: number;
  /** Bytes after the response head, before frames are read. */
  readonly rest: Uint8Array;
  send(frame: Uint8Array): void;
  /** Resolves with the next complete frame, or null on EOF. */
  next(): Promise<Frame | null>;
}

/** How {@link rawConnect} sends its request. */
export interface RawOptions {
  path?: string;
  host?: string;
  /** Bytes sent in the same write as the request head (frames sent eagerly). */
  after?: Uint8Array;
  /** Send the first `splitAt` bytes (negative: from the end of the head), the rest 50 ms later. */
  splitAt?: number;
}

/** Connects and sends a handshake with `headers` (defaults filled in). */
export function rawConnect(
  port: number,
  headers: Record<string, string | undefined> = {},
  { path = "/", host = "127.0.0.1", after, splitAt }: RawOptions = {},
): Promise<RawClient> {
  const all: Record<string, string | undefined> = {
    Host: `${host}:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  const lines = Object.entries(all).filter(([, v]) => v !== undefined).map(([k, v]) =>
    `${k}: ${v}`
  );
  const sock = net.connect({ host, port });
  sock.on("error", () => {});
  let buf = new Uint8Array(0);
  let ended = false;
  let wake: () => void = () => {};
  sock.on("data", (d: Uint8Array) => {
    buf = Buffer.concat([buf, d]);
    wake();
  });
  sock.on("close", () => {
    ended = true;
    wake();
  });
  const more = () => new Promise<void>((r) => (wake = r));
  const requestHead = Buffer.from(
    `GET ${path} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`,
    "latin1",
  );
  const request = Buffer.concat([requestHead, after ?? new Uint8Array(0)]);
  if (splitAt === undefined) sock.write(request);
  else {
    const at = splitAt < 0 ? requestHead.length + splitAt : splitAt;
    sock.write(request.subarray(0, at));
    setTimeout(() => sock.write(request.subarray(at)), 50);
  }

  return (async () => {
    let end: number;
    while ((end = Buffer.from(buf).indexOf("\r\n\r\n")) < 0) {
      if (ended) throw new Error(`no response head: ${Buffer.from(buf).toString()}`);
      await more();
    }
    const head = Buffer.from(buf.subarray(0, end)).toString("latin1");
    buf = buf.subarray(end + 4);
    const client: RawClient = {
      sock,
      head,
      status: Number(head.split(" ")[1]),
      rest: buf,
      send: (frame) => void sock.write(frame),
      async next() {
        for (;;) {
          const frame = parseFrame(buf);
          if (frame) {
            buf = buf.subarray(frame.size);
            return frame.frame;
          }
          if (ended) return null;
          await more();
        }
      },
    };
    return client;
  })();
}

function parseFrame(buf: Uint8Array): { frame: Frame; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = view.getUint16(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(view.getBigUint64(2));
    offset = 10;
  }
  if (buf.length < offset + len) return undefined;
  const frame = {
    fin: (buf[0]! & 0x80) !== 0,
    opcode: buf[0]! & 0x0f,
    payload: buf.subarray(offset, offset + len),
  };
  return { frame, size: offset + len };
}

/** The status of a handshake to `path` with `headers`; the connection is then dropped. */
export async function upgradeStatus(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const client = await rawConnect(port, headers, { path });
  client.sock.destroy();
  return client.status;
}

/** Reads a close frame's code and reason. */
export function parseClose(frame: Frame): { code: number; reason: string } {
  const view = new DataView(frame.payload.buffer, frame.payload.byteOffset);
  return {
    code: frame.payload.length >= 2 ? view.getUint16(0) : 1005,
    reason: new TextDecoder().decode(frame.payload.subarray(2)),
  };
}

/**
 * Records what a `FrameParser` reports, as strings, with runs of binary
 * pieces joined into one array of bytes.
 */
export function recorder(): {
  handler: FrameHandler;
  events: () => (string | number[])[];
} {
  const events: (string | number[])[] = [];
  let binary: number[] = [];
  const flush = () => {
    if (binary.length) events.push(binary);
    binary = [];
  };
  const handler: FrameHandler = {
    receiveData: (bytes) => void binary.push(...bytes),
    receiveText: (message) => (flush(), void events.push(`text:${message}`)),
    receivePing: (
      payload,
    ) => (flush(), void events.push(`ping:${new TextDecoder().decode(payload)}`)),
    receivePong: () => (flush(), void events.push("pong")),
    receiveClose: (code, reason) => (flush(), void events.push(`close:${code}:${reason}`)),
    protocolError: (code, reason) => (flush(), void events.push(`error:${code}:${reason}`)),
  };
  return { handler, events: () => (flush(), events) };
}
