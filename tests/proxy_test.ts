/**
 * The proxy end to end over loopback: data both ways, subprotocols, close
 * codes, frames a normal client would never send.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { closePayload, encodeFrame, parseClose, rawConnect } from "./_frames.ts";
import { closed, openClient, pattern, receive, useEchoProxy, within } from "./_harness.ts";

describe("proxy to a TCP echo server", () => {
  const setup = useEchoProxy();

  test("websockify() echoes 4 MiB both ways without loss or reordering", async () => {
    const ws = await openClient(setup.port, ["binary"]);
    const data = pattern(4 * 1024 * 1024, 3);
    const got = receive(ws, data.byteLength);
    for (let i = 0; i < data.length; i += 65536) ws.send(data.subarray(i, i + 65536));
    assert.deepEqual(await within(20000, got, "echo"), data);
    ws.close();
    await closed(ws);
  });

  test("websockify() answers a ping with a pong carrying the same payload", async () => {
    const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": "binary" });
    assert.equal(raw.status, 101);
    raw.send(encodeFrame(0x9, new TextEncoder().encode("are you there")));
    const frame = await within(5000, raw.next(), "pong");
    assert.equal(frame?.opcode, 0xa);
    assert.equal(new TextDecoder().decode(frame!.payload), "are you there");
    raw.sock.destroy();
  });

  test("websockify() echoes a client close with its code and reason", async () => {
    const raw = await rawConnect(setup.port);
    raw.send(encodeFrame(0x8, closePayload(1000, "bye")));
    const frame = await within(5000, raw.next(), "close echo");
    assert.equal(frame?.opcode, 0x8);
    assert.deepEqual(parseClose(frame!), { code: 1000, reason: "bye" });
    raw.sock.destroy();
  });

  test("websockify() closes 1002 on an unmasked client frame", async () => {
    const raw = await rawConnect(setup.port);
    raw.send(encodeFrame(0x2, new Uint8Array([1, 2, 3]), { mask: false }));
    const frame = await within(5000, raw.next(), "close");
    assert.equal(frame?.opcode, 0x8);
    assert.equal(parseClose(frame!).code, 1002);
    raw.sock.destroy();
  });

  test("websockify() closes 1003 on a text frame in binary mode", async () => {
    const ws = await openClient(setup.port, ["binary"]);
    ws.send("hello");
    assert.deepEqual(await within(5000, closed(ws)), {
      code: 1003,
      reason: "Unsupported: Text frames are not supported",
    });
  });

  test("websockify() closes 1003 as soon as a text frame starts in binary mode", async () => {
    const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": "binary" });
    // A first fragment only: the close must not wait for the message to end.
    raw.send(encodeFrame(0x1, new TextEncoder().encode("hello"), { fin: false }));
    const frame = await within(5000, raw.next(), "close");
    assert.equal(frame?.opcode, 0x8);
    assert.deepEqual(parseClose(frame!), {
      code: 1003,
      reason: "Unsupported: Text frames are not supported",
    });
    raw.sock.destroy();
  });

  // Binary payload is streamed, so only the target's pace limits a message.
  for (const frames of [1, 3]) {
    const size = frames === 1 ? 16 * 1024 * 1024 : 6 * 1024 * 1024;
    // A timeout past bun's 5 s default, for a loaded machine.
    const name = `websockify() passes a binary message of ${size} bytes in ${frames} frame(s)`;
    test(name, { timeout: 60000 }, async () => {
      const ws = await openClient(setup.port, ["binary"]);
      const data = pattern(size, 11);
      const got = receive(ws, data.byteLength);
      const part = size / frames;
      for (let i = 0; i < frames; i++) {
        ws.send(data.subarray(i * part, (i + 1) * part), { fin: i === frames - 1 });
      }
      const echoed = await within(30000, got, "echo");
      // Not deepEqual: its diff of two large arrays takes minutes.
      assert.ok(Buffer.from(echoed).equals(data), "echo differs");
      ws.close();
      await closed(ws);
    });
  }

  test("websockify() closes 1009 on a text message over the size limit", async () => {
    const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": "base64" });
    // Only the header: the length alone is enough to refuse it.
    const header = encodeFrame(0x1, new Uint8Array(5 * 1024 * 1024)).subarray(0, 14);
    raw.send(header);
    const frame = await within(5000, raw.next(), "close");
    assert.equal(frame?.opcode, 0x8);
    assert.equal(parseClose(frame!).code, 1009);
    raw.sock.destroy();
  });

  test("websockify() closes 1007 on malformed base64 in base64 mode", async () => {
    const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": "base64" });
    raw.send(encodeFrame(0x1, new TextEncoder().encode("not base64!")));
    const frame = await within(5000, raw.next(), "close");
    assert.equal(frame?.opcode, 0x8);
    assert.equal(parseClose(frame!).code, 1007);
    raw.sock.destroy();
  });
});
