/**
 * The client frame parser and server frame heads (`lib/protocol/frames.ts`): the same
 * events whatever the chunking, unmasking at every alignment and phase, and
 * the close code for each protocol violation.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fastUnmask } from "../adapters/server/unmask.ts";
import { CLOSE_REASON } from "../lib/protocol/close_codes.ts";
import { FrameParser } from "../lib/protocol/frames.ts";
import {
  closePayload,
  frameHead,
  frameInPlace,
  HEAD_ROOM,
  lendHeadRoom,
  WHOLE_FRAME_MAX,
  wholeFrame,
  withHeadRoom,
} from "../lib/protocol/server_frames.ts";
import { unmask } from "../lib/protocol/unmask.ts";
import { encodeFrame, recorder } from "./_frames.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const MAX = 1 << 20;

/** Parses `wire` pushed in chunks of `size` bytes (copies: the parser unmasks in place). */
function parse(wire: Uint8Array, size = wire.length, max = MAX) {
  const { handler, events } = recorder();
  const parser = new FrameParser(handler, max);
  for (let i = 0; i < wire.length; i += size) parser.push(wire.slice(i, i + size));
  return events();
}

/** A masked binary frame head with a 64-bit length whose first two bytes are `b0`, `b1`. */
const head64 = (b0: number, b1: number) =>
  new Uint8Array([0x82, 0xff, b0, b1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

describe("unmask()", () => {
  test("unmask() matches a byte loop at every alignment, phase and short length", () => {
    const mask = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
    const fast = fastUnmask();
    for (const fn of [unmask, fast]) {
      for (const length of [0, 1, 3, 4, 5, 17, 255, 256, 1000, 70_001]) {
        for (let offset = 0; offset < 4; offset++) {
          for (let phase = 0; phase < 4; phase++) {
            const data = pattern(length + offset).subarray(offset);
            const expected = data.map((b, i) => b ^ mask[(phase + i) & 3]!);
            fn(data, mask, phase);
            assert.deepEqual(data, expected, `length ${length} offset ${offset} phase ${phase}`);
          }
        }
      }
    }
  });
});

describe("FrameParser", () => {
  const wire = concat(
    encodeFrame(0x2, pattern(70_000)),
    encodeFrame(0x9, enc("are you there")),
    encodeFrame(0x2, enc("frag"), { fin: false }),
    encodeFrame(0x9, enc("in between")),
    encodeFrame(0x0, enc("men"), { fin: false }),
    encodeFrame(0x0, enc("ted"), { fin: true }),
    encodeFrame(0x1, enc("héllo "), { fin: false }),
    encodeFrame(0xa, new Uint8Array(0)),
    encodeFrame(0x0, enc("wörld")),
    encodeFrame(0x2, new Uint8Array(0)),
    encodeFrame(0x8, closePayload(1000, "bye")),
    encodeFrame(0x2, enc("after close is ignored")),
  );
  const expected = [
    [...pattern(70_000)],
    "ping:are you there",
    [...enc("frag")],
    "ping:in between",
    [...enc("mented")],
    "pong",
    "text:héllo wörld",
    "close:1000:bye",
  ];

  for (const size of [1, 2, 3, 5, 13, 126, 4096, 65_536, wire.length]) {
    test(`FrameParser reports the same events for chunks of ${size} bytes`, () => {
      assert.deepEqual(parse(wire, size), expected);
    });
  }

  test("FrameParser hands binary payload on as views of the pushed chunk", () => {
    const chunk = encodeFrame(0x2, pattern(1000));
    const pieces: Uint8Array[] = [];
    const { handler } = recorder();
    new FrameParser({ ...handler, receiveData: (b) => void pieces.push(b) }, MAX).push(chunk);
    assert.equal(pieces.length, 1);
    assert.equal(pieces[0]!.buffer, chunk.buffer);
    assert.deepEqual(new Uint8Array(pieces[0]!), pattern(1000));
  });

  test("FrameParser streams binary messages of any length, past the text limit", () => {
    const max = 100;
    const wire = concat(
      encodeFrame(0x2, pattern(60), { fin: false }),
      encodeFrame(0x0, pattern(60), { fin: false }),
      encodeFrame(0x0, pattern(60)),
      encodeFrame(0x2, pattern(300)),
    );
    const data = [...pattern(60), ...pattern(60), ...pattern(60), ...pattern(300)];
    assert.deepEqual(parse(wire, 7, max), [data]);
    // The longest length RFC 6455 allows that a number holds exactly: its head, then data.
    const { handler, events } = recorder();
    const parser = new FrameParser(handler, max);
    const head = head64(0x00, 0x1f);
    head.fill(0xff, 4, 10);
    parser.push(head);
    parser.push(new Uint8Array(1000));
    assert.equal(events().flat().length, 1000);
    assert.ok(parser.held <= 14, `held ${parser.held}`);
  });

  test("FrameParser refuses a text frame at its head when text is refused", () => {
    const { handler, events } = recorder();
    const parser = new FrameParser(handler, 0);
    parser.push(encodeFrame(0x1, enc("abc"), { fin: false }).subarray(0, 2));
    assert.deepEqual(events(), ["error:1003:Unsupported: Text frames are not supported"]);
  });

  test("FrameParser holds a text message of tiny fragments at about its size, to its limit", () => {
    const max = 64 * 1024;
    const { handler, events } = recorder();
    const parser = new FrameParser(handler, max);
    parser.push(encodeFrame(0x1, enc("a"), { fin: false }));
    const fragment = encodeFrame(0x0, enc("b"), { fin: false });
    let sent = 1;
    for (; sent <= max && events().length === 0; sent++) {
      parser.push(fragment.slice());
      // Doubling growth: at most twice what came, plus a small start.
      assert.ok(parser.held <= 2 * (sent + 1) + 256 + 14, `held ${parser.held} after ${sent}`);
    }
    assert.equal(sent, max + 1);
    assert.deepEqual(events(), ["error:1009:Message too big"]);
    assert.equal(parser.held, 0);
  });

  test("FrameParser reports an empty close as 1005", () => {
    assert.deepEqual(parse(encodeFrame(0x8, new Uint8Array(0))), ["close:1005:"]);
  });

  /** A violation: its bytes, the error event it must give and any data passed on before it. */
  interface Violation {
    readonly what: string;
    readonly bytes: Uint8Array;
    readonly event: string;
    readonly before?: number[][];
    /** The text limit (`maxTextBytes`); 1 MiB when absent. */
    readonly max?: number;
  }
  const withBits = (frame: Uint8Array, bits: number) => {
    frame[0]! |= bits;
    return frame;
  };
  const protocol = (reason: string) => `error:1002:${reason}`;
  const violations: Violation[] = [
    {
      what: "an unmasked frame",
      bytes: encodeFrame(0x2, enc("x"), { mask: false }),
      event: protocol("Procotol error: Frame not masked"),
    },
    ...[0x40, 0x20, 0x10].map((bit): Violation => ({
      what: `reserved bit 0x${bit.toString(16)}`,
      bytes: withBits(encodeFrame(0x2, enc("x")), bit),
      event: protocol("Protocol error: Reserved bits set"),
    })),
    {
      what: "a continuation without a start",
      bytes: encodeFrame(0x0, enc("x")),
      event: protocol("Procotol error: Unexpected continuation frame"),
    },
    {
      what: "a new message inside a fragmented one",
      bytes: concat(encodeFrame(0x2, enc("a"), { fin: false }), encodeFrame(0x2, enc("b"))),
      event: protocol("Procotol error: Unexpected new frame"),
      before: [[...enc("a")]],
    },
    {
      what: "a fragmented ping",
      bytes: encodeFrame(0x9, enc("x"), { fin: false }),
      event: protocol("Protocol error: Fragmented control frame"),
    },
    {
      what: "a control frame over 125 bytes",
      bytes: encodeFrame(0x9, new Uint8Array(126)),
      event: protocol("Protocol error: Control frame too long"),
    },
    {
      what: "a close frame over 125 bytes",
      bytes: encodeFrame(0x8, new Uint8Array(126)),
      event: protocol("Protocol error: Control frame too long"),
    },
    {
      what: "an unknown opcode",
      bytes: encodeFrame(0x3, enc("x")),
      event: protocol("Protocol error: Unknown opcode 0x03"),
    },
    {
      what: "an unknown control opcode",
      bytes: encodeFrame(0xb, enc("x")),
      event: protocol("Protocol error: Unknown opcode 0x0b"),
    },
    {
      what: "a 64-bit length with its top bit set",
      bytes: head64(0x80, 0),
      event: protocol("Protocol error: Frame length has its top bit set"),
    },
    {
      what: "a 64-bit length past 2^53 - 1",
      bytes: head64(0x00, 0x20),
      event: "error:1009:Message too big",
    },
    {
      what: "a text frame over the limit (head only)",
      bytes: encodeFrame(0x1, new Uint8Array(200)).subarray(0, 8),
      event: "error:1009:Message too big",
      max: 100,
    },
    {
      what: "a fragmented text message over the limit",
      bytes: concat(
        encodeFrame(0x1, new Uint8Array(60), { fin: false }),
        encodeFrame(0x0, new Uint8Array(60)),
      ),
      event: "error:1009:Message too big",
      max: 100,
    },
    {
      what: "a text frame where text is refused (head only)",
      bytes: encodeFrame(0x1, enc("x"), { fin: false }).subarray(0, 2),
      event: `error:1003:${CLOSE_REASON.textUnsupported}`,
      max: 0,
    },
    {
      what: "a text message that is not UTF-8",
      bytes: encodeFrame(0x1, new Uint8Array([0xc3, 0x28])),
      event: "error:1007:Invalid UTF-8 in text frame",
    },
    {
      what: "a one-byte close payload",
      bytes: encodeFrame(0x8, new Uint8Array([3])),
      event: protocol("Protocol error: Invalid close code"),
    },
    // Codes a client may not send: below 1000, reserved, unassigned, or past 4999.
    ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000].map((code): Violation => ({
      what: `close code ${code}`,
      bytes: encodeFrame(0x8, closePayload(code)),
      event: protocol("Protocol error: Invalid close code"),
    })),
    {
      what: "a close reason that is not UTF-8",
      bytes: encodeFrame(0x8, new Uint8Array([0x03, 0xe8, 0xff])),
      event: protocol("Procotol error: Invalid UTF-8 in close"),
    },
  ];
  for (const { what, bytes, event, before = [], max } of violations) {
    const code = event.split(":")[1];
    for (const size of [1, bytes.length]) {
      const how = size === 1 ? "" : " (in one chunk)";
      test(`FrameParser fails ${what} with ${code} and stops${how}`, () => {
        // The frame after the violation must not be parsed.
        const events = parse(concat(bytes, encodeFrame(0x2, enc("later"))), size, max);
        assert.deepEqual(events, [...before, event]);
      });
    }
  }

  // Codes a client may send are passed on with their reason; parsing stops.
  const allowed = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
  for (const code of [...allowed, 3000, 4999]) {
    test(`FrameParser reports a close with code ${code}`, () => {
      const wire = concat(encodeFrame(0x8, closePayload(code, "wé")), encodeFrame(0x9, enc("x")));
      assert.deepEqual(parse(wire, 3), [`close:${code}:wé`]);
    });
  }
});

describe("frameHead() and closePayload()", () => {
  for (const length of [0, 125, 126, 65_535, 65_536, 2 ** 32 + 5]) {
    test(`frameHead() encodes a length of ${length}`, () => {
      const head = frameHead(0x2, length);
      assert.equal(head[0], 0x82);
      const len7 = head[1]! & 0x7f;
      const view = new DataView(head.buffer);
      const decoded = len7 === 126
        ? view.getUint16(2)
        : len7 === 127
        ? Number(view.getBigUint64(2))
        : len7;
      assert.equal(decoded, length);
      assert.equal(head.length, length < 126 ? 2 : length < 65_536 ? 4 : 10);
    });
  }

  for (const length of [0, 1, 125, 126, WHOLE_FRAME_MAX]) {
    test(`wholeFrame() is the head and ${length} payload bytes in one buffer`, () => {
      const payload = pattern(length);
      assert.deepEqual(wholeFrame(0x2, payload), concat(frameHead(0x2, length), payload));
      assert.deepEqual(wholeFrame(0xa, payload), concat(frameHead(0xa, length), payload));
    });
  }

  for (const length of [0, 125, 126, 65_535, 65_536]) {
    test(`frameInPlace() frames ${length} bytes in the room before them, once`, () => {
      const buf = withHeadRoom(length + 5);
      for (let i = 0; i < length; i++) buf[i] = i * 7;
      // Not lent yet: the reader may still read into it.
      assert.equal(frameInPlace(0x2, buf.subarray(0, length)), undefined);
      const payload = lendHeadRoom(buf.subarray(0, length));
      const expected = new Uint8Array([...frameHead(0x2, length), ...payload]);
      const frame = frameInPlace(0x2, payload);
      assert.deepEqual(frame, expected);
      assert.equal(frame!.buffer, payload.buffer); // no copy
      assert.equal(frameInPlace(0x2, payload), undefined);
      // A view that does not start right after the room has none.
      assert.equal(
        frameInPlace(0x2, lendHeadRoom(withHeadRoom(length + 1).subarray(1))),
        undefined,
      );
    });
  }

  test("frameInPlace() leaves buffers it did not make alone", () => {
    const buf = new Uint8Array(HEAD_ROOM + 4).fill(9);
    assert.equal(frameInPlace(0x2, buf.subarray(HEAD_ROOM)), undefined);
    // Nor does lending room from a buffer that has none before the view.
    assert.equal(frameInPlace(0x2, lendHeadRoom(buf.subarray(1))), undefined);
    assert.deepEqual(buf, new Uint8Array(HEAD_ROOM + 4).fill(9));
  });

  test("closePayload() cuts a long reason to fit a control frame", () => {
    const payload = closePayload(1011, "x".repeat(300));
    assert.equal(payload.length, 125);
    assert.equal((payload[0]! << 8) | payload[1]!, 1011);
    assert.deepEqual(closePayload(), new Uint8Array(0));
  });
});
