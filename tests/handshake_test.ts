/**
 * The handshake: upstream's header checks and texts, the subprotocol rule,
 * and the answers to plain HTTP requests, both as pure functions and on the
 * wire.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkHandshake, selectSubprotocol } from "../lib/protocol/handshake.ts";
import { encodeFrame, rawConnect } from "./_frames.ts";
import { httpGet, rawHttp, useEchoProxy, within } from "./_harness.ts";

describe("selectSubprotocol()", () => {
  const cases: [string | null, string | undefined][] = [
    [null, ""],
    ["", ""],
    ["binary", "binary"],
    ["binary,base64", "binary"],
    ["binary, base64", "binary"],
    ["base64, binary", "binary"],
    ["base64,binary", "binary"],
    ["  binary  ", "binary"],
    ["base64", "base64"],
    ["chat, base64", "base64"],
    ["chat", undefined],
    ["binaryx", undefined],
  ];
  for (const [offered, chosen] of cases) {
    test(`selectSubprotocol() picks ${JSON.stringify(chosen)} for ${JSON.stringify(offered)}`, () => {
      assert.equal(selectSubprotocol(offered), chosen);
    });
  }
});

describe("checkHandshake()", () => {
  const base = { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" };
  const cases: [Record<string, string>, string | undefined][] = [
    [base, undefined],
    [{ "sec-websocket-key": "x" }, "Missing Sec-WebSocket-Version header"],
    [{ ...base, "sec-websocket-version": "12" }, "Unsupported protocol version 12"],
    [{ "sec-websocket-version": "13" }, "Missing Sec-WebSocket-Key header"],
    [{ ...base, "sec-websocket-protocol": "chat" }, "Invalid protocol selected"],
  ];
  for (const [headers, reason] of cases) {
    test(`checkHandshake() gives ${reason ?? "ok"}`, () => {
      const result = checkHandshake(new Headers(headers));
      if (reason === undefined) assert.deepEqual(result, { ok: true, protocol: "" });
      else assert.deepEqual(result, { ok: false, status: 400, reason });
    });
  }
});

describe("handshake on the wire", () => {
  const setup = useEchoProxy();

  const protocolCases: [string | undefined, number, string | undefined][] = [
    [undefined, 101, undefined],
    ["binary", 101, "binary"],
    ["binary,base64", 101, "binary"],
    ["base64, binary", 101, "binary"],
    ["base64", 101, "base64"],
    ["chat", 400, undefined],
  ];
  for (const [offered, status, chosen] of protocolCases) {
    test(`upgrade offering ${offered ?? "nothing"} answers ${status} ${chosen ?? ""}`, async () => {
      const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": offered });
      assert.equal(raw.status, status, raw.head);
      const header = /^sec-websocket-protocol: *(.*)$/im.exec(raw.head)?.[1];
      assert.equal(header, chosen);
      if (status === 400) {
        assert.match(raw.head, /^HTTP\/1\.1 400 Invalid protocol selected/);
        assert.match(Buffer.from(raw.rest).toString(), /Invalid protocol selected/);
      } else {
        assert.match(raw.head, /^sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=$/im);
      }
      raw.sock.destroy();
    });
  }

  const refusals: [Record<string, string | undefined>, string][] = [
    [{ "Sec-WebSocket-Version": undefined }, "Missing Sec-WebSocket-Version header"],
    [{ "Sec-WebSocket-Version": "12" }, "Unsupported protocol version 12"],
    [{ "Sec-WebSocket-Key": undefined }, "Missing Sec-WebSocket-Key header"],
  ];
  for (const [headers, reason] of refusals) {
    test(`upgrade answers 400 "${reason}"`, async () => {
      const raw = await rawConnect(setup.port, headers);
      assert.equal(raw.head.split("\r\n")[0], `HTTP/1.1 400 ${reason}`);
      assert.match(raw.head, /^content-length: \d+$/im);
      raw.sock.destroy();
    });
  }

  test("base64 mode carries data as base64 text frames both ways", async () => {
    const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": "base64" });
    const bytes = new Uint8Array([0, 1, 2, 250, 255, 10]);
    raw.send(encodeFrame(0x1, new TextEncoder().encode(Buffer.from(bytes).toString("base64"))));
    const frame = await within(5000, raw.next(), "echo");
    assert.equal(frame?.opcode, 0x1);
    const text = new TextDecoder().decode(frame!.payload);
    assert.deepEqual(new Uint8Array(Buffer.from(text, "base64")), bytes);
    raw.sock.destroy();
  });

  // A head that arrives whole is answered without node:http; one in pieces goes through it.
  const deliveries: [string, { after?: boolean; splitAt?: number }][] = [
    ["whole, with a frame in the same write", { after: true }],
    ["in two writes, split in the request line", { splitAt: 7 }],
    ["in two writes, split before the blank line", { splitAt: -2 }],
    ["in two writes, the frame in the second", { after: true, splitAt: -10 }],
  ];
  for (const [how, { after, splitAt }] of deliveries) {
    test(`an upgrade sent ${how} is accepted and carries data`, async () => {
      const hello = new TextEncoder().encode("hello");
      const frame = encodeFrame(0x2, hello);
      const raw = await rawConnect(setup.port, { "Sec-WebSocket-Protocol": "binary" }, {
        after: after ? frame : undefined,
        splitAt,
      });
      assert.equal(raw.status, 101, raw.head);
      if (!after) raw.send(frame);
      const echo = await within(5000, raw.next(), "echo");
      assert.equal(echo?.opcode, 0x2);
      assert.deepEqual(new Uint8Array(echo!.payload), hello);
      raw.sock.destroy();
    });
  }

  test("an upgrade refused on the whole-head path closes after its answer", async () => {
    const raw = await rawConnect(setup.port, { "Sec-WebSocket-Version": "12" });
    assert.equal(raw.status, 400);
    assert.equal(await within(5000, raw.next(), "close"), null);
  });

  test("odd upgrade heads are still answered as node:http answers them", async () => {
    const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    const folded = await rawHttp(
      setup.port,
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `X-Folded: a\r\n b\r\n${key}\r\n`,
    );
    assert.equal(folded.status, 400);
    const lowerCase = await rawConnect(setup.port, {
      Upgrade: "WebSocket",
      Connection: "keep-alive, upgrade",
    });
    assert.equal(lowerCase.status, 101, lowerCase.head);
    lowerCase.sock.destroy();
  });

  test("a plain GET without --web answers 405", async () => {
    assert.equal((await httpGet(setup.port, "/")).status, 405);
  });

  test("an unknown method answers 501", async () => {
    const res = await httpGet(setup.port, "/", { method: "TRACE" });
    assert.equal(res.status, 501);
    assert.match(res.body, /Unsupported method \('TRACE'\)/);
  });

  test("an upgrade to another protocol is a plain request (405 without --web)", async () => {
    const raw = await rawConnect(setup.port, { Upgrade: "h2c" });
    assert.equal(raw.status, 405);
    raw.sock.destroy();
  });

  test("a POST asking for an upgrade answers 405", async () => {
    const res = await rawHttp(
      setup.port,
      "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert.equal(res.status, 405);
  });
});
