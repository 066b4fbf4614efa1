/**
 * Answers on a raw socket, outside `node:http`: the fetch `Request` of an
 * upgrade request's head, and the response to an upgrade that was refused.
 *
 * @module
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { requestUrl } from "../../lib/protocol/host.ts";
import { SHORT_BODY_BYTES } from "../../lib/limits.ts";
import type { HandshakeDeadline } from "./deadline.ts";

/**
 * Builds a fetch `Request` from an upgrade request's head. Header pairs and a
 * URL string, not `Headers` and `URL` objects, which Deno converts field by
 * field, far slower.
 */
export function toRequest(req: http.IncomingMessage): Request {
  const raw = req.rawHeaders;
  const headers: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
  return new Request(requestUrl(req.headers.host, req.url ?? "/"), {
    method: req.method,
    headers,
  });
}

/**
 * Answers an upgrade request that was not accepted (a refusal, or another
 * protocol's upgrade served as a plain request) on the raw socket and ends
 * it; the deadline then waits for the client's FIN.
 */
export async function answer(
  socket: Duplex,
  res: Response,
  deadline?: HandshakeDeadline,
): Promise<void> {
  deadline?.busy();
  try {
    await writeResponse(socket, res);
  } catch {
    socket.destroy();
  } finally {
    deadline?.idle();
  }
}

/**
 * Writes `res` with `Connection: close`. The body (a `--web` file can be
 * large) is streamed as the socket drains, never read whole.
 */
async function writeResponse(socket: Duplex, res: Response): Promise<void> {
  const reason = res.statusText || http.STATUS_CODES[res.status] || "";
  let head = `HTTP/1.1 ${res.status} ${reason}\r\n`;
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection") head += `${name}: ${value}\r\n`;
  });
  let length = res.headers.get("content-length");
  const reader = res.body?.getReader();
  const first: Uint8Array[] = [];
  let done = !reader;
  if (length === null) {
    let size = 0;
    while (!done && size < SHORT_BODY_BYTES) {
      const chunk = await reader!.read();
      if (chunk.done) done = true;
      else size += first[first.push(chunk.value) - 1]!.byteLength;
    }
    if (done) length = String(size);
  }
  // Without a length the body ends with the connection.
  if (length !== null) head += `Content-Length: ${length}\r\n`;
  head += "Connection: close\r\n\r\n";
  socket.resume(); // on to the client's FIN; what else it sends is dropped
  let ready = socket.write(Buffer.concat([Buffer.from(head, "latin1"), ...first]));
  while (!done) {
    if (!ready) await drained(socket);
    if (socket.destroyed) return void await reader!.cancel();
    const chunk = await reader!.read();
    if (chunk.done) break;
    ready = socket.write(chunk.value);
  }
  socket.end();
}

/** Resolves when `socket` can take more bytes or is gone. */
function drained(socket: Duplex): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}
