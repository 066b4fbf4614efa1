/**
 * `--heartbeat`: pings the client on a timer and gives up on one that stops
 * answering.
 *
 * @module
 */
import { Alarm, deadlines } from "../deadlines.ts";
import type { WsConn } from "../types.ts";

const noop = () => {};

/** One session's heartbeat: an alarm on the shared deadline queue, re-armed each beat. */
class Heartbeat extends Alarm {
  missed = 0;

  constructor(
    readonly ws: WsConn,
    readonly ms: number,
    readonly onTimeout: () => void,
  ) {
    super();
    deadlines.arm(this, ms);
  }

  ring(): void {
    deadlines.arm(this, this.ms);
    if (this.missed >= 2) this.onTimeout();
    else {
      this.missed++;
      this.ws.ping();
    }
  }
}

/** Pings every `ms`; drops a client that has missed two pongs in a row. */
export function startHeartbeat(
  ws: WsConn,
  ms: number | undefined,
  onTimeout: () => void,
): () => void {
  if (!ms || ms <= 0) return noop;
  const beat = new Heartbeat(ws, ms, onTimeout);
  ws.onpong = () => (beat.missed = 0);
  return () => {
    beat.stop();
    ws.onpong = null;
  };
}
