/**
 * A minimal Chrome DevTools Protocol session over a proxy's inspector
 * WebSocket (`--inspect`), for the profilers in `bench/`.
 *
 * @module
 */
import fs from "node:fs";
import WebSocket from "ws";

/** A CDP session: `send` resolves with the command's result. */
export interface Inspector {
  send(method: string, params?: object): Promise<unknown>;
  close(): void;
}

/** Connects to the inspector whose `ws://` URL the proxy printed in `log`. */
export async function inspectorFromLog(log: string): Promise<Inspector> {
  const url = /ws:\/\/\S+/.exec(fs.readFileSync(log, "utf8"))?.[0];
  if (!url) throw new Error(`no inspector URL in ${log}`);
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  let next = 1;
  const waiting = new Map<number, (r: unknown) => void>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  return {
    send(method, params = {}) {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve) => waiting.set(id, resolve));
    },
    close: () => ws.close(),
  };
}

/** A frame's source, shortened: `lib/x.js`, `node_modules/pkg/x.js`, `node:net`. */
export function source(url: string): string {
  const i = url.indexOf("/node_modules/");
  if (i >= 0) return url.slice(i + 1);
  return url.replace(/^.*\/(dist\/)?(?=(lib|adapters|cli)[./])/, "");
}
