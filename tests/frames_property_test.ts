/**
 * Properties of the client frame parser (`lib/protocol/frames.ts`) over generated
 * input: any bytes in any split never throw and never make it hold more
 * than its limits; a valid frame stream reports the same events whole, a
 * byte at a time, or cut anywhere.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { FrameParser } from "../lib/protocol/frames.ts";
import { closePayload, encodeFrame, recorder } from "./_frames.ts";

/** Enough runs to find a broken rule, few enough for a few seconds per runtime. */
const RUNS = 100;
const CONTROL_MAX = 125;
/** A head that spans chunks is gathered in a buffer of this size. */
const HEAD_MAX = 14;

/**
 * Pushes copies of `wire` (the parser unmasks in place) cut at `cuts`,
 * calling `each` with the count of bytes pushed so far after each push.
 */
function feed(
  parser: FrameParser,
  wire: Uint8Array,
  cuts: number[],
  each?: (pushed: number) => void,
): void {
  const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  let at = 0;
  for (const point of [...points, wire.length]) {
    if (point <= at) continue;
    parser.push(wire.slice(at, point));
    at = point;
    each?.(at);
  }
}

function parse(wire: Uint8Array, cuts: number[], maxText: number) {
  const { handler, events } = recorder();
  feed(new FrameParser(handler, maxText), wire, cuts);
  return events();
}

const key = fc.uint8Array({ minLength: 4, maxLength: 4 });
const cuts = fc.array(fc.nat(), { maxLength: 20, size: "max" });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength, size: "max" });
/** Payloads of every length encoding (7, 16 and 64 bits); the long ones rare, as they are slow. */
const payload = (maxLength: number) =>
  fc.oneof(
    { weight: 30, arbitrary: bytes(maxLength) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 65_536, maxLength: 66_000 }) },
  );

/** A frame with any head bits: opcode, FIN, RSV, mask or not, any payload. */
const anyFrame = fc.record({
  opcode: fc.integer({ min: 0, max: 15 }),
  fin: fc.boolean(),
  rsv: fc.constantFrom(0, 0, 0, 0x10, 0x40),
  masked: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
  payload: payload(200),
  key,
}).map(({ opcode, fin, rsv, masked, payload, key }) => {
  const frame = encodeFrame(opcode, payload, { fin, mask: masked, key });
  frame[0]! |= rsv;
  return frame;
});

/** Frames mostly of the right shape, or plain noise, or a stream cut short. */
const anyWire = fc.oneof(
  bytes(300),
  fc.array(anyFrame, { maxLength: 12 }).map((frames) => new Uint8Array(Buffer.concat(frames))),
  fc.tuple(fc.array(anyFrame, { maxLength: 6 }), bytes(20)).map(([frames, tail]) =>
    new Uint8Array(Buffer.concat([...frames, tail]))
  ),
);

// --- valid streams and the events they should give ---

type Message =
  | { kind: "binary"; parts: Uint8Array[] }
  | { kind: "text"; parts: string[] }
  | { kind: "ping"; payload: Uint8Array }
  | { kind: "pong"; payload: Uint8Array };

const control = fc.oneof(
  bytes(CONTROL_MAX).map((payload) => ({ kind: "ping" as const, payload })),
  bytes(CONTROL_MAX).map((payload) => ({ kind: "pong" as const, payload })),
);
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.array(payload(300), { minLength: 1, maxLength: 4 }).map((parts) => ({
    kind: "binary" as const,
    parts,
  })),
  fc.array(fc.string({ unit: "grapheme", maxLength: 40 }), { minLength: 1, maxLength: 4 })
    .map((parts) => ({ kind: "text" as const, parts })),
  control,
);

/**
 * Messages as masked frames, with control frames between fragments, and
 * maybe a close at the end; with the events they should give.
 */
const validStream = fc.record({
  messages: fc.array(fc.tuple(message, fc.array(control, { maxLength: 2 })), { maxLength: 8 }),
  close: fc.option(fc.tuple(fc.constantFrom(1000, 1001, 3000, 4999), fc.string({ maxLength: 20 }))),
  key,
}).map(({ messages, close, key }) => {
  const frames: Uint8Array[] = [];
  const expected: (string | number[])[] = [];
  let firstText = -1;
  const data = (bytes: Uint8Array) => {
    const last = expected.at(-1);
    if (Array.isArray(last)) last.push(...bytes);
    else if (bytes.length > 0) expected.push([...bytes]);
  };
  const sendControl = (m: { kind: "ping" | "pong"; payload: Uint8Array }) => {
    frames.push(encodeFrame(m.kind === "ping" ? 0x9 : 0xa, m.payload, { key }));
    expected.push(m.kind === "ping" ? `ping:${new TextDecoder().decode(m.payload)}` : "pong");
  };
  for (const [m, between] of messages) {
    if (m.kind === "ping" || m.kind === "pong") {
      sendControl(m);
      continue;
    }
    const parts = m.kind === "text" ? m.parts.map((p) => new TextEncoder().encode(p)) : m.parts;
    if (m.kind === "text" && firstText < 0) firstText = expected.length;
    parts.forEach((part, i) => {
      const opcode = i > 0 ? 0x0 : m.kind === "text" ? 0x1 : 0x2;
      frames.push(encodeFrame(opcode, part, { fin: i === parts.length - 1, key }));
      if (m.kind === "binary") data(part);
      // Control frames may come between fragments.
      if (i < parts.length - 1) between.forEach(sendControl);
    });
    if (m.kind === "text") expected.push(`text:${m.parts.join("")}`);
  }
  if (close) {
    const [code, reason] = close;
    frames.push(encodeFrame(0x8, closePayload(code, reason), { key }));
    frames.push(encodeFrame(0x2, new Uint8Array([1, 2, 3]), { key })); // ignored after close
    expected.push(`close:${code}:${reason}`);
  }
  return { wire: new Uint8Array(Buffer.concat(frames)), expected, firstText };
});

describe("FrameParser properties", () => {
  test("any bytes, cut anywhere, never throw nor make the parser hold past its limits", () => {
    fc.assert(
      fc.property(anyWire, cuts, fc.integer({ min: 0, max: 300 }), (wire, cuts, maxText) => {
        const { handler, events } = recorder();
        const parser = new FrameParser(handler, maxText);
        let last = 0;
        feed(parser, wire, cuts, (pushed) => {
          const held = parser.held;
          assert.ok(held <= maxText + CONTROL_MAX + HEAD_MAX, `held ${held} of ${maxText}`);
          // Doubling growth: about what arrived, however finely it came.
          assert.ok(held <= 2 * pushed + 256 + CONTROL_MAX + HEAD_MAX, `held ${held}`);
          last = held;
        });
        const seen = events();
        const end = seen.findIndex((e) => typeof e === "string" && /^(close|error):/.test(e));
        // A close or a protocol error is the last event; nothing is held afterwards.
        assert.ok(end < 0 || end === seen.length - 1, JSON.stringify(seen));
        if (end >= 0) assert.equal(last, 0);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test("a text message in fragments is held at about its size, and refused past the limit", () => {
    const fragments = fc.array(bytes(8), { minLength: 1, maxLength: 400, size: "max" });
    fc.assert(
      fc.property(fragments, fc.integer({ min: 1, max: 2000 }), key, (parts, maxText, key) => {
        const { handler, events } = recorder();
        const parser = new FrameParser(handler, maxText);
        let payload = 0;
        for (const [i, part] of parts.entries()) {
          // Never finished: the parser has to hold all of it.
          parser.push(encodeFrame(i === 0 ? 0x1 : 0x0, part, { fin: false, key }));
          payload += part.length;
          if (payload > maxText) {
            assert.deepEqual(events(), ["error:1009:Message too big"]);
            return;
          }
          const held = parser.held;
          assert.ok(held <= Math.max(256, 2 * payload), `held ${held} for ${payload} bytes`);
        }
        assert.deepEqual(events(), []);
      }),
      { numRuns: RUNS },
    );
  });

  test("a valid stream reports the same events whole, byte by byte, and cut anywhere", () => {
    fc.assert(
      fc.property(validStream, ({ wire, expected }) => {
        assert.deepEqual(parse(wire, [], 1 << 20), expected);
        if (wire.length <= 4096) {
          const everyOffset = Array.from({ length: wire.length }, (_, i) => i);
          assert.deepEqual(parse(wire, everyOffset, 1 << 20), expected);
        }
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(validStream, cuts, ({ wire, expected }, cuts) => {
        assert.deepEqual(parse(wire, cuts, 1 << 20), expected);
      }),
      { numRuns: RUNS },
    );
  });

  test("where text is refused, a valid stream stops with 1003 at its first text frame", () => {
    fc.assert(
      fc.property(validStream, cuts, ({ wire, expected, firstText }, cuts) => {
        const seen = parse(wire, cuts, 0);
        if (firstText < 0) return assert.deepEqual(seen, expected);
        assert.deepEqual(seen, [
          ...expected.slice(0, firstText),
          "error:1003:Unsupported: Text frames are not supported",
        ]);
      }),
      { numRuns: RUNS },
    );
  });
});
