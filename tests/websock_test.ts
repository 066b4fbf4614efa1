/**
 * The browser client's logic without a browser: the receive queue, `Websock`
 * over a scripted socket and over `ws` through the real proxy (binary and
 * base64), the telnet filter and the ANSI line screen.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { AnsiScreen, type Run } from "../client/ansi.ts";
import { readTelnet } from "../client/telnet.ts";
import { ReceiveQueue, type SocketLike, Websock } from "../client/websock.ts";
import type { Websockify } from "../mod.ts";
import { pattern, startEchoServer, startProxy, type TcpServer, within } from "./_harness.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

describe("ReceiveQueue", () => {
  test("shift16 and shift32 read big-endian, unsigned", () => {
    const q = new ReceiveQueue();
    q.push(bytes(0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0x80));
    assert.equal(q.shift16(), 0x1234);
    assert.equal(q.shift32(), 0xdeadbeef);
    assert.equal(q.shift32(), 4294967295);
    assert.equal(q.peek8(), 0x80);
    assert.equal(q.length, 1);
    assert.equal(q.shift8(), 0x80);
    assert.equal(q.length, 0);
  });

  test("wait is true while fewer than num bytes are queued, and can step back", () => {
    const q = new ReceiveQueue();
    q.push(bytes(7, 0, 3));
    assert.equal(q.wait(3), false);
    assert.equal(q.shift8(), 7);
    assert.equal(q.wait(3, 1), true, "2 queued, 3 wanted");
    assert.equal(q.length, 3, "stepped back over the type byte");
    assert.equal(q.shift8(), 7);
    q.push(bytes(9));
    assert.equal(q.wait(3), false);
    assert.throws(() => q.wait(10, 5), RangeError);
  });

  test("reading past the end throws and consumes nothing", () => {
    const q = new ReceiveQueue();
    q.push(bytes(1, 2, 3));
    assert.throws(() => q.shift32(), RangeError);
    assert.throws(() => q.shiftBytes(4), RangeError);
    assert.equal(q.length, 3);
    assert.deepEqual(q.shiftBytes(), bytes(1, 2, 3));
    assert.throws(() => q.peek8(), RangeError);
  });

  test("shiftStr maps bytes to chars; shiftBytes returns a copy", () => {
    const q = new ReceiveQueue();
    q.push(new Uint8Array([0x68, 0x69, 0xe9, 0x00, 1, 2]));
    assert.equal(q.shiftStr(4), "hi\u00e9\u0000");
    const got = q.shiftBytes();
    got[0] = 99;
    q.push(bytes(5));
    assert.deepEqual(q.shiftBytes(), bytes(5));
  });

  test("appends compact instead of growing when read bytes make room", () => {
    const q = new ReceiveQueue();
    const cap = q.capacity;
    const data = pattern(cap * 20, 3);
    let readAt = 0;
    // Push chunks of 3/4 capacity and read each fully before the next: never more
    // than one chunk is live, so the buffer must be reused, not enlarged.
    for (let i = 0; i < data.length; i += (cap * 3) / 4) {
      q.push(data.subarray(i, i + (cap * 3) / 4));
      const got = q.shiftBytes();
      assert.deepEqual(got, data.subarray(readAt, readAt + got.length));
      readAt += got.length;
    }
    assert.equal(readAt, data.length);
    assert.equal(q.capacity, cap);
  });

  test("grows when the unread bytes do not fit, keeping their order", () => {
    const q = new ReceiveQueue();
    const data = pattern(q.capacity * 5 + 123, 11);
    q.push(data.subarray(0, 10));
    assert.equal(q.shift16(), (data[0]! << 8) | data[1]!);
    for (let i = 10; i < data.length; i += 1000) q.push(data.subarray(i, i + 1000));
    assert.ok(q.capacity >= data.length - 2);
    assert.deepEqual(q.shiftBytes(), data.subarray(2));
  });
});

/** A scripted WebSocket: the test plays the server. */
class FakeSocket implements SocketLike {
  binaryType = "blob";
  protocol = "";
  readyState = 0;
  sent: (string | Uint8Array)[] = [];
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  constructor(readonly uri: string, readonly protocols: string[]) {}
  send(data: string | Uint8Array): void {
    this.sent.push(typeof data === "string" ? data : data.slice());
  }
  close(code = 1000, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: true });
  }
  accept(protocol: string): void {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({});
  }
  deliver(data: unknown): void {
    this.onmessage?.({ data });
  }
}

function fakeWebsock(): { ws: Websock; socket: () => FakeSocket } {
  let made: FakeSocket | undefined;
  const ws = new Websock({ createSocket: (uri, p) => (made = new FakeSocket(uri, p)) });
  return { ws, socket: () => made! };
}

describe("Websock over a scripted socket", () => {
  test("binary: queues ArrayBuffer messages, sends bytes, offers binary", () => {
    const { ws, socket } = fakeWebsock();
    let messages = 0;
    ws.on("message", () => messages++);
    ws.open("ws://proxy.test/");
    assert.deepEqual(socket().protocols, ["binary"]);
    assert.equal(socket().binaryType, "arraybuffer");
    socket().accept("binary");
    socket().deliver(bytes(0, 1).buffer);
    socket().deliver(bytes(0, 0, 0x10).buffer);
    assert.equal(messages, 2);
    assert.equal(ws.rQshift8(), 0);
    assert.equal(ws.rQshift32(), 0x01000000 + 0x10);
    ws.send([1, 2, 300]);
    ws.sendString("é\r\n");
    assert.deepEqual(socket().sent, [bytes(1, 2, 44), bytes(0xc3, 0xa9, 13, 10)]);
  });

  test("base64: text frames are decoded, sends are base64 text", () => {
    const { ws, socket } = fakeWebsock();
    ws.open("ws://proxy.test/", ["base64"]);
    socket().accept("base64");
    assert.equal(ws.protocol, "base64");
    socket().deliver(btoa("\x00\x01\xff"));
    socket().deliver(btoa("AB"));
    assert.equal(ws.rQlen(), 5);
    assert.equal(ws.rQshift16(), 1);
    assert.equal(ws.rQshift8(), 255);
    assert.equal(ws.rQshiftStr(), "AB");
    ws.send(bytes(0xfb, 0xff));
    assert.deepEqual(socket().sent, ["+/8="]);
  });

  test("a text frame on a binary connection, or bad base64, is an error and queues nothing", () => {
    const { ws, socket } = fakeWebsock();
    const errors: unknown[] = [];
    ws.on("error", (e) => errors.push(e));
    ws.open("ws://proxy.test/");
    socket().accept("binary");
    socket().deliver("text");
    ws.open("ws://proxy.test/", ["base64"]);
    socket().accept("base64");
    socket().deliver("not base64!");
    assert.equal(errors.length, 2);
    assert.equal(ws.rQlen(), 0);
  });

  test("close reports code and reason; a replaced socket stays silent", () => {
    const { ws, socket } = fakeWebsock();
    const closes: unknown[] = [];
    ws.on("close", (info) => closes.push(info));
    ws.open("ws://proxy.test/a");
    socket().accept("binary");
    ws.open("ws://proxy.test/b");
    socket().accept("binary");
    assert.equal(ws.isOpen, true);
    ws.close(1000, "bye");
    assert.deepEqual(closes, [{ code: 1000, reason: "bye", wasClean: true }]);
    assert.equal(ws.isOpen, false);
    assert.throws(() => ws.send([1]), /not open/);
  });
});

describe("Websock through the proxy (ws as the socket)", () => {
  let echo: TcpServer;
  let proxy: Websockify;
  before(async () => {
    echo = await startEchoServer();
    proxy = await startProxy(`127.0.0.1:${echo.port}`);
  });
  after(async () => {
    await proxy?.close();
    await echo?.close();
  });

  for (const protocol of ["binary", "base64"]) {
    test(`${protocol}: bytes echo back through the target into the queue`, async () => {
      const ws = new Websock({
        createSocket: (uri, p) => new WebSocket(uri, p) as unknown as SocketLike,
      });
      const data = pattern(70000, 1);
      const done = new Promise<{ magic: number; body: Uint8Array }>((resolve, reject) => {
        ws.on("open", () => {
          ws.send(bytes(0xca, 0xfe, 0xba, 0xbe));
          ws.send(data);
        });
        ws.on("message", () => {
          // The header once 4 bytes are in; then step back until the whole body is.
          if (ws.rQwait("header", 4)) return;
          const magic = ws.rQshift32();
          if (ws.rQwait("body", data.length, 4)) return;
          resolve({ magic, body: ws.rQshiftBytes(data.length) });
        });
        ws.on("close", (c) => reject(new Error(`closed ${c.code}`)));
      });
      ws.open(`ws://127.0.0.1:${proxy.addr.port}/`, [protocol]);
      try {
        const { magic, body } = await within(10000, done, "echo");
        assert.equal(magic, 0xcafebabe);
        assert.deepEqual(body, data);
        assert.equal(ws.protocol, protocol);
        assert.equal(ws.rQlen(), 0);
      } finally {
        const closed = new Promise<void>((r) => ws.on("close", () => r()));
        ws.close();
        await within(5000, closed, "close");
      }
    });
  }
});

describe("readTelnet", () => {
  test("refuses options, unescapes IAC IAC, skips subnegotiations", () => {
    const { ws, socket } = fakeWebsock();
    ws.open("ws://proxy.test/");
    socket().accept("binary");
    socket().deliver(bytes(0x41, 255, 253, 1, 255, 251, 3, 0x42, 255, 255).buffer);
    socket().deliver(bytes(255, 250, 24, 1, 255, 240, 0x43).buffer);
    assert.deepEqual(readTelnet(ws), bytes(0x41, 0x42, 255, 0x43));
    assert.deepEqual(socket().sent, [bytes(255, 252, 1), bytes(255, 254, 3)]);
  });

  test("a command split across messages waits for its end", () => {
    const { ws, socket } = fakeWebsock();
    ws.open("ws://proxy.test/");
    socket().accept("binary");
    socket().deliver(bytes(0x61, 255, 253).buffer);
    assert.deepEqual(readTelnet(ws), bytes(0x61));
    assert.equal(ws.rQlen(), 2, "IAC DO kept");
    socket().deliver(bytes(31, 255, 250, 31).buffer);
    assert.deepEqual(readTelnet(ws), bytes());
    assert.equal(ws.rQlen(), 3, "unfinished IAC SB kept");
    socket().deliver(bytes(0, 80, 255, 240, 0x62).buffer);
    assert.deepEqual(readTelnet(ws), bytes(0x62));
    assert.deepEqual(socket().sent, [bytes(255, 252, 31)]);
  });
});

describe("AnsiScreen", () => {
  function screen(): { s: AnsiScreen; lines: Run[][]; clears: () => number } {
    const lines: Run[][] = [];
    let clears = 0;
    const s = new AnsiScreen({ line: (r) => lines.push(r), clear: () => clears++ });
    return { s, lines, clears: () => clears };
  }
  const text = (runs: Run[]) => runs.map((r) => r.text).join("");

  test("SGR colours and attributes become classes; reset clears them", () => {
    const { s, lines } = screen();
    s.write("\x1b[1;31mred\x1b[0m \x1b[4;92;44mx\x1b[7m\x1b[39;49my\x1b[m\r\n");
    assert.deepEqual(lines, [[
      { text: "red", cls: "f1 bold" },
      { text: " ", cls: "" },
      { text: "x", cls: "f10 b4 ul" },
      { text: "y", cls: "fi bi ul" },
    ]]);
  });

  test("CR overwrites, backspace steps back, tab pads, erase-line cuts", () => {
    const { s, lines } = screen();
    s.write("hello\rJ\n");
    s.write("abc\b\bX\n");
    s.write("a\tb\n");
    s.write("keep this\x1b[5D\x1b[K!\n\x07");
    assert.deepEqual(lines.map(text), ["Jello", "aXc", "a       b", "keep!"]);
  });

  test("escape sequences split across writes, and unknown ones, are not printed", () => {
    const { s, lines, clears } = screen();
    s.write("a\x1b[3");
    s.write("2mb\x1b");
    s.write("]0;title\x07c\x1b(Bd\x1b[?25l\x1b[2J\x1b[H");
    assert.equal(clears(), 1);
    s.write("e\n");
    assert.deepEqual(lines, [[{ text: "e", cls: "f2" }]]);
    assert.equal(text(s.current()), "");
  });
});
