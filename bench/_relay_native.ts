/**
 * The bare relay of `_relay.ts` on the runtime's own sockets rather than
 * `node:net`: `Deno.listen`/`Deno.connect` on Deno, `Bun.listen`/`Bun.connect`
 * on Bun. `relays.ts` runs both, to tell what `node:net` costs each runtime
 * per connection before any WebSocket work.
 *
 * Run: `deno run -A bench/_relay_native.ts 127.0.0.1:0 127.0.0.1:TARGET_PORT`
 * (or `bun bench/_relay_native.ts ...`).
 *
 * @module
 */
import process from "node:process";
import { relayAddresses } from "./_relay_args.ts";

const { listen, target } = relayAddresses("_relay_native.ts");

// --- the slices of the Deno and Bun APIs in use (no runtime types for tsc) ---

interface DenoConn {
  read(buf: Uint8Array): Promise<number | null>;
  write(buf: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay(on: boolean): void;
}
interface DenoSlice {
  listen(o: { hostname: string; port: number }): AsyncIterable<DenoConn> & {
    addr: { hostname: string; port: number };
  };
  connect(o: { hostname: string; port: number }): Promise<DenoConn>;
}
interface BunSock {
  data: { peer?: BunSock; early: Uint8Array[]; ended: boolean };
  write(data: Uint8Array): number;
  end(): void;
}
type BunHandlers = {
  open?(s: BunSock): void;
  data(s: BunSock, chunk: Uint8Array): void;
  end(s: BunSock): void;
  close(s: BunSock): void;
  error(): void;
};
interface BunSlice {
  listen(o: object): { hostname: string; port: number };
  connect(o: object): Promise<BunSock>;
}

const globals = globalThis as { Deno?: DenoSlice; Bun?: BunSlice };

/** Copies `from` to `to` until EOF, then half-closes `to`. */
async function pipe(from: DenoConn, to: DenoConn): Promise<void> {
  const buf = new Uint8Array(65536);
  try {
    for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
      for (let off = 0; off < n;) off += await to.write(buf.subarray(off, n));
    }
    await to.closeWrite();
  } catch {
    // The other side is gone.
  }
}

async function denoRelay(deno: DenoSlice): Promise<void> {
  const server = deno.listen(listen);
  console.log(`Listen on ${server.addr.hostname}:${server.addr.port}`);
  for await (const client of server) {
    client.setNoDelay(true);
    deno.connect(target).then(async (up) => {
      up.setNoDelay(true);
      await Promise.all([pipe(client, up), pipe(up, client)]);
      client.close();
      up.close();
    }, () => client.close());
  }
}

function bunRelay(bun: BunSlice): void {
  // Each socket's `data.peer` is the other side; bytes that come before the
  // target is connected wait in `early`.
  const upstream: BunHandlers = {
    data: (s, chunk) => void s.data.peer!.write(chunk),
    end: (s) => s.data.peer!.end(),
    close: (s) => s.data.peer!.end(),
    error: () => {},
  };
  const server = bun.listen({
    ...listen,
    allowHalfOpen: true,
    socket: {
      open(client: BunSock) {
        client.data = { early: [], ended: false };
        bun.connect({
          ...target,
          allowHalfOpen: true,
          data: { peer: client, early: [], ended: false },
          socket: {
            ...upstream,
            open(up: BunSock) {
              client.data.peer = up;
              for (const chunk of client.data.early) up.write(chunk);
              if (client.data.ended) up.end();
            },
          },
        });
      },
      data(client: BunSock, chunk: Uint8Array) {
        if (client.data.peer) client.data.peer.write(chunk);
        else client.data.early.push(new Uint8Array(chunk));
      },
      end(client: BunSock) {
        if (client.data.peer) client.data.peer.end();
        else client.data.ended = true;
      },
      close: (client: BunSock) => client.data.peer?.end(),
      error: () => {},
    },
  });
  console.log(`Listen on ${server.hostname}:${server.port}`);
}

if (globals.Deno) await denoRelay(globals.Deno);
else if (globals.Bun) bunRelay(globals.Bun);
else {
  console.error("_relay_native.ts runs on Deno or Bun; on Node, _relay.ts is native");
  process.exit(2);
}
