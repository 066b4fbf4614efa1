/**
 * A `ws` WebSocket as a {@link WsConn}. `ws` runs on the `node:http` stack of
 * all three runtimes, checks masking and framing, and can pause reading and
 * report queued bytes, which the runtimes' native servers cannot all do
 * (runtimes.md T2, T3).
 *
 * @module
 */
import type { WebSocket } from "ws";
import type { CloseInfo, WsConn } from "../lib/types.ts";
import { HIGH_WATER_MARK, SEND_HIGH_WATER_MARK } from "./limits.ts";

const OPEN = 1;

/** Wraps an open `ws` socket whose subprotocol was chosen as `protocol`. */
export function wsConn(ws: WebSocket, protocol: string): WsConn {
  let done = false;
  const closed = new Promise<CloseInfo>((resolve) => {
    ws.once("close", (code: number, reason: Uint8Array) => {
      resolve({ code, reason: new TextDecoder().decode(reason) });
    });
  });
  // Without a listener a bad frame would crash the process (runtimes.md T5);
  // ws closes the connection itself with the right code.
  ws.on("error", () => {});

  const readable = new ReadableStream<Uint8Array | string>({
    start(controller) {
      ws.on("message", (data: Uint8Array, isBinary: boolean) => {
        if (done) return;
        controller.enqueue(isBinary ? data : new TextDecoder().decode(data));
        if ((controller.desiredSize ?? 1) <= 0) ws.pause();
      });
      ws.once("close", () => {
        if (!done) controller.close();
        done = true;
      });
    },
    pull() {
      if (ws.isPaused) ws.resume();
    },
    cancel() {
      done = true;
      ws.resume();
    },
  }, {
    highWaterMark: HIGH_WATER_MARK,
    size: (chunk) => typeof chunk === "string" ? chunk.length : chunk.byteLength,
  });

  const writable = new WritableStream<Uint8Array | string>({
    write(chunk) {
      // After the client has gone, target bytes have nowhere to go: drop them.
      if (ws.readyState !== OPEN) return;
      if (ws.bufferedAmount < SEND_HIGH_WATER_MARK) {
        ws.send(chunk);
        return;
      }
      return new Promise<void>((resolve) => {
        ws.send(chunk, () => resolve());
        closed.then(() => resolve());
      });
    },
  });

  const conn: WsConn = {
    readable,
    writable,
    protocol,
    closed,
    close(code, reason) {
      if (ws.readyState === OPEN) ws.close(code, reason);
    },
    abort: () => ws.terminate(),
    ping() {
      if (ws.readyState === OPEN) ws.ping();
    },
    onpong: null,
  };
  ws.on("pong", () => conn.onpong?.());
  return conn;
}
