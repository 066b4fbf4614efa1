/**
 * `--heartbeat`: pings the client on a timer and gives up on one that stops
 * answering.
 *
 * @module
 */
import type { WsConn } from "../types.ts";

const noop = () => {};

/** Pings every `ms`; drops a client that has missed two pongs in a row. */
export function startHeartbeat(
  ws: WsConn,
  ms: number | undefined,
  onTimeout: () => void,
): () => void {
  if (!ms || ms <= 0) return noop;
  let missed = 0;
  ws.onpong = () => (missed = 0);
  const timer = setInterval(() => {
    if (missed >= 2) onTimeout();
    else {
      missed++;
      ws.ping();
    }
  }, ms);
  return () => {
    clearInterval(timer);
    ws.onpong = null;
  };
}
