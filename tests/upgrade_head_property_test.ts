/**
 * Properties of the fast upgrade-head parser, with generated heads: it never
 * throws, it reads a head the same whole or byte by byte, and every head it
 * accepts is one a real `node:http` server reads the same way.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { parseUpgradeHead, type UpgradeHead } from "../lib/protocol/upgrade_head.ts";
import { within } from "./_harness.ts";

const encoder = new TextEncoder();
const chars = (from: number, to: number, except = "") =>
  Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i))
    .filter((c) => !except.includes(c));
const stringOf = (alphabet: string[], maxLength: number, minLength = 0) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength, maxLength });
/** Pick one spelling of `word`'s letters' case. */
const anyCase = (word: string) =>
  fc.array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((upper) => [...word].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(""));

const TCHAR = [
  ..."!#$%&'*+.^_`|~-",
  ...chars(0x30, 0x39),
  ...chars(0x41, 0x5a),
  ...chars(0x61, 0x7a),
];
const path = stringOf(chars(0x21, 0x7e), 40).map((p) => `/${p}`);
const name = stringOf(TCHAR, 12, 1).filter((n) =>
  !["host", "upgrade", "connection", "content-length", "transfer-encoding"].includes(
    n.toLowerCase(),
  )
);
/** A field value as sent: optional whitespace around visible text with inner spaces and tabs. */
const value = fc.tuple(
  stringOf([" ", "\t"], 2),
  stringOf([...chars(0x20, 0x7e), "\t"], 30),
  stringOf([" ", "\t"], 2),
).map((parts) => parts.join(""));
const host = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().map((a) => `[${a}]`),
).chain((h) =>
  fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }).map((p) =>
    p === undefined ? h : `${h}:${p}`
  )
);
const ows = stringOf([" ", "\t"], 2);
const upgrade = fc.tuple(ows, anyCase("websocket"), ows).map((p) => p.join(""));
const connection = fc.tuple(
  fc.constantFrom("", "keep-alive, ", "keep-alive,", "close, "),
  anyCase("upgrade"),
  fc.constantFrom("", ", keep-alive", ",x"),
).map((p) => p.join(""));

/** A generated request head, as lines, with the fields the parser should find. */
interface Generated {
  readonly text: string;
  readonly path: string;
  readonly headers: [string, string][];
}

/** Heads with `minExtra` to `maxExtra` fields besides Host, Upgrade and Connection. */
const requestHead = (minExtra: number, maxExtra: number): fc.Arbitrary<Generated> =>
  fc.record({
    path,
    host: fc.option(host, { nil: undefined }),
    upgrade,
    connection,
    extra: fc.array(fc.tuple(name, value), {
      minLength: minExtra,
      maxLength: maxExtra,
      size: "max",
    }),
    order: fc.nat(),
  }).map(({ path, host, upgrade, connection, extra, order }) => {
    const fields: [string, string][] = [...extra];
    const place = (field: [string, string]) => fields.splice(order % (fields.length + 1), 0, field);
    place(["Upgrade", upgrade]);
    place(["Connection", connection]);
    if (host !== undefined) place(["Host", host]);
    const text = `GET ${path} HTTP/1.1\r\n` +
      fields.map(([n, v]) => `${n}:${v}\r\n`).join("") + "\r\n";
    return { text, path, headers: fields.map(([n, v]) => [n, v.replace(/^[ \t]+|[ \t]+$/g, "")]) };
  });

const validHead = requestHead(0, 6);
/** Around the fast path's field limit, and past what Bun's `node:http` takes. */
const crowdedHead = requestHead(50, 250);

/** A valid head with one of its bytes changed, dropped or doubled. */
const mutatedHead = fc.tuple(validHead, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(2))
  .map(([head, at, byte, how]) => {
    const b = [...encoder.encode(head.text)];
    const i = at % b.length;
    if (how === 0) b[i] = byte;
    else if (how === 1) b.splice(i, 1);
    else b.splice(i, 0, byte);
    return new Uint8Array(b);
  });

describe("parseUpgradeHead() properties", () => {
  test("never throws, whatever the bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedHead), (bytes) => {
        const head = parseUpgradeHead(bytes);
        if (head) assert.ok(head.length <= bytes.length);
      }),
      { numRuns: 1000 },
    );
  });

  test("a valid head is read whole, and the same when it arrives byte by byte", () => {
    fc.assert(
      fc.property(validHead, fc.uint8Array({ maxLength: 8 }), (head, frames) => {
        const bytes = new Uint8Array([...encoder.encode(head.text), ...frames]);
        const whole = parseUpgradeHead(bytes);
        assert.ok(whole, `not accepted: ${JSON.stringify(head.text)}`);
        assert.equal(whole.length, head.text.length);
        assert.equal(whole.path, head.path);
        assert.deepEqual(whole.headers, head.headers);
        assert.equal(whole.host, head.headers.find(([n]) => n === "Host")?.[1]);
        for (let n = 0; n < bytes.length; n++) {
          const prefix = parseUpgradeHead(bytes.subarray(0, n));
          if (n < whole.length) assert.equal(prefix, undefined, `prefix of ${n} bytes`);
          else assert.deepEqual(prefix, whole);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** What the real `node:http` server made of one request head. */
type Seen =
  | { kind: "upgrade" | "request"; method: string; url: string; headers: [string, string][] }
  | { kind: "error" };

describe("parseUpgradeHead() against node:http", () => {
  let server: http.Server;
  let port: number;
  let seen: (value: Seen) => void = () => {};
  const record = (kind: "upgrade" | "request") => (req: http.IncomingMessage) => {
    const headers: [string, string][] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    }
    seen({ kind, method: req.method ?? "", url: req.url ?? "", headers });
  };

  before(async () => {
    server = http.createServer((req, res) => {
      record("request")(req);
      res.end();
    });
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
      record("upgrade")(req);
      socket.destroy();
    });
    server.on("clientError", (_error: Error, socket: Duplex) => {
      seen({ kind: "error" });
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Sends `bytes` on a new connection and resolves with what the server saw. */
  function send(bytes: Uint8Array): Promise<Seen> {
    const result = new Promise<Seen>((resolve) => (seen = resolve));
    const sock = net.connect({ host: "127.0.0.1", port }, () => sock.write(bytes));
    sock.on("error", () => {});
    sock.resume();
    return within(5000, result, "node:http").finally(() => sock.destroy());
  }

  /** Asserts that node:http read an accepted head as the fast path did. */
  function sameAsNode(head: UpgradeHead, node: Seen, text: string): void {
    if (node.kind !== "upgrade") {
      assert.fail(`node:http saw ${node.kind} for ${JSON.stringify(text)}`);
    }
    assert.equal(node.method, "GET");
    assert.equal(node.url, head.path);
    const lower = (h: [string, string][]) => h.map(([n, v]) => [n.toLowerCase(), v]);
    assert.deepEqual(lower(node.headers), lower(head.headers), JSON.stringify(text));
  }

  test("every generated head it accepts, node:http reads the same", async () => {
    await fc.assert(
      fc.asyncProperty(validHead, async (generated) => {
        const bytes = encoder.encode(generated.text);
        const head = parseUpgradeHead(bytes);
        assert.ok(head);
        sameAsNode(head, await send(bytes), generated.text);
      }),
      { numRuns: 80 },
    );
  });

  test("a head with many fields is accepted only if node:http reads it the same", async () => {
    await fc.assert(
      fc.asyncProperty(crowdedHead, async (generated) => {
        const bytes = encoder.encode(generated.text);
        const head = parseUpgradeHead(bytes);
        if (head) sameAsNode(head, await send(bytes), generated.text);
      }),
      { numRuns: 40 },
    );
  });

  test("every altered head it still accepts, node:http reads the same", async () => {
    await fc.assert(
      fc.asyncProperty(mutatedHead, async (bytes) => {
        const head = parseUpgradeHead(bytes);
        if (!head) return;
        const text = new TextDecoder().decode(bytes);
        sameAsNode(head, await send(bytes.subarray(0, head.length)), text);
      }),
      { numRuns: 150 },
    );
  });
});
