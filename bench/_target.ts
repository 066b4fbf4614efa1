/**
 * The benchmark's TCP target, run as its own Node process so that the proxy
 * runs and the raw runs talk to the very same server. The first byte a
 * connection sends picks the mode:
 *
 * - `E`: echo everything that follows.
 * - `S` + u64 length: sink; read `length` bytes, then answer one byte `K`.
 * - `R` + u64 length: source; write `length` bytes in 64 KiB chunks, pausing
 *   while the socket is full.
 *
 * Prints `{"port":N}` on stdout once listening; exits when stdin closes, so it
 * never outlives the runner.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";

const CHUNK = 64 * 1024;
const HEADER = 9;
const BLOCK = Buffer.alloc(CHUNK, 0x5a);

function sink(sock: net.Socket, total: number, first: Buffer): void {
  let got = first.byteLength;
  let acked = false;
  const check = () => {
    if (!acked && got >= total) {
      acked = true;
      sock.write("K");
    }
  };
  sock.on("data", (chunk: Buffer) => {
    got += chunk.byteLength;
    check();
  });
  check();
}

function source(sock: net.Socket, total: number): void {
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(CHUNK, left);
      left -= n;
      if (!sock.write(n === CHUNK ? BLOCK : BLOCK.subarray(0, n))) {
        sock.once("drain", pump);
        return;
      }
    }
  };
  sock.resume();
  pump();
}

function onConnection(sock: net.Socket): void {
  sock.setNoDelay(true);
  sock.on("error", () => sock.destroy());
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.byteLength ? Buffer.concat([head, chunk]) : chunk;
    const mode = String.fromCharCode(head[0]!);
    if (mode === "E") {
      sock.off("data", onData);
      if (head.byteLength > 1) sock.write(head.subarray(1));
      sock.pipe(sock);
      return;
    }
    if (head.byteLength < HEADER) return;
    sock.off("data", onData);
    const total = Number(head.readBigUInt64BE(1));
    if (mode === "S") sink(sock, total, head.subarray(HEADER));
    else if (mode === "R") source(sock, total);
    else sock.destroy();
  };
  sock.on("data", onData);
}

const server = net.createServer({ noDelay: true }, onConnection);
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
  const { port } = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.stdin.on("end", () => process.exit(0)).resume();
process.on("SIGTERM", () => process.exit(0));
