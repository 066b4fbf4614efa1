/**
 * A `ws` WebSocket as a {@link WsConn}. `ws` runs on the `node:http` stack of
 * all three runtimes, checks masking and framing, and can pause reading and
 * report queued bytes, which the runtimes' native servers cannot all do
 * (runtimes.md T2, T3).
 *
 * @module
 */
import type { WebSocket } from "ws";
import { ChunkQueue, type QueueSource, READY, StreamViews } from "../lib/chunks.ts";
import type { ChunkWriter, CloseInfo, WsConn } from "../lib/types.ts";
import { HIGH_WATER_MARK, SEND_HIGH_WATER_MARK } from "./limits.ts";

const OPEN = 1;
const decoder = new TextDecoder();

/** Wraps an open `ws` socket whose subprotocol was chosen as `protocol`. */
export function wsConn(ws: WebSocket, protocol: string): WsConn {
  return new WsSocketConn(ws, protocol);
}

// A class, not an object literal with getters: see node_conn.ts.
class WsSocketConn extends StreamViews<Uint8Array | string, Uint8Array | string>
  implements WsConn, QueueSource {
  readonly reader: ChunkQueue<Uint8Array | string> = new ChunkQueue(this, HIGH_WATER_MARK);
  readonly writer: WsWriter;
  readonly closed: Promise<CloseInfo>;
  onpong: (() => void) | null = null;

  constructor(readonly ws: WebSocket, readonly protocol: string) {
    super();
    const writer = this.writer = new WsWriter(ws);
    ws.on("message", (data: Uint8Array, isBinary: boolean) => {
      this.reader.push(isBinary ? data : decoder.decode(data));
    });
    this.closed = new Promise<CloseInfo>((resolve) => {
      ws.once("close", (code: number, reason: Uint8Array) => {
        this.reader.end();
        writer.wake?.();
        resolve({ code, reason: decoder.decode(reason) });
      });
    });
    // Without a listener a bad frame would crash the process (runtimes.md T5);
    // ws closes the connection itself with the right code.
    ws.on("error", () => {});
    ws.on("pong", () => this.onpong?.());
  }

  close(code?: number, reason?: string): void {
    if (this.ws.readyState === OPEN) this.ws.close(code, reason);
  }

  abort(): void {
    this.ws.terminate();
  }

  ping(): void {
    if (this.ws.readyState === OPEN) this.ws.ping();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  cancel(): void {
    this.ws.resume();
  }
}

class WsWriter implements ChunkWriter<Uint8Array | string> {
  ready: Promise<void> = READY;
  /** Ends the wait for room; called once the socket closes. */
  wake: (() => void) | null = null;

  constructor(readonly ws: WebSocket) {}

  write(chunk: Uint8Array | string): Promise<void> {
    const ws = this.ws;
    // After the client has gone, target bytes have nowhere to go: drop them.
    if (ws.readyState !== OPEN) return READY;
    if (ws.bufferedAmount < SEND_HIGH_WATER_MARK) {
      ws.send(chunk);
      return READY;
    }
    this.ready = new Promise<void>((resolve) => {
      const done = () => {
        if (this.wake === done) {
          this.wake = null;
          this.ready = READY;
        }
        resolve();
      };
      this.wake = done;
      ws.send(chunk, done);
    });
    return READY;
  }

  close(): Promise<void> {
    return this.ready;
  }

  abort(): Promise<void> {
    return READY;
  }
}
