/**
 * Just enough telnet for line-based services behind a telnet-ish port: data
 * bytes pass, every option the server offers or asks for is refused, and
 * subnegotiations are skipped. A command split across messages stays queued
 * (`rQwait` with `goback`) until the rest arrives.
 *
 * @module
 */
import type { Websock } from "./websock.ts";

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const SE = 240;

/** The part of {@link Websock} that {@link readTelnet} uses. */
export type TelnetSocket = Pick<Websock, "rQlen" | "rQshift8" | "rQwait" | "send">;

/**
 * Reads the queued bytes, answers negotiations on `ws`, returns the data.
 *
 * @example
 * ```ts
 * ws.on("message", () => output.write(decoder.decode(readTelnet(ws), { stream: true })));
 * ```
 */
export function readTelnet(ws: TelnetSocket): Uint8Array {
  const out = new Uint8Array(ws.rQlen());
  let n = 0;
  while (ws.rQlen() > 0) {
    const b = ws.rQshift8();
    if (b !== IAC) {
      out[n++] = b;
      continue;
    }
    if (ws.rQwait("telnet command", 1, 1)) break;
    const cmd = ws.rQshift8();
    if (cmd === IAC) {
      out[n++] = IAC; // an escaped 255 data byte
    } else if (cmd >= WILL && cmd <= DONT) {
      if (ws.rQwait("telnet option", 1, 2)) break;
      const option = ws.rQshift8();
      // Refuse: we will not, and the server should not (it then stays in plain line mode).
      if (cmd === DO) ws.send([IAC, WONT, option]);
      if (cmd === WILL) ws.send([IAC, DONT, option]);
    } else if (cmd === SB && !skipSubnegotiation(ws)) {
      break;
    } // other commands (NOP, GA, ...) carry nothing for us
  }
  return out.subarray(0, n);
}

/** Skips to IAC SE; false (and nothing consumed) when it has not arrived yet. */
function skipSubnegotiation(ws: TelnetSocket): boolean {
  let read = 2; // IAC SB
  let afterIac = false;
  for (;;) {
    if (ws.rQwait("telnet subnegotiation", 1, read)) return false;
    const b = ws.rQshift8();
    read++;
    if (afterIac && b === SE) return true;
    afterIac = !afterIac && b === IAC;
  }
}
