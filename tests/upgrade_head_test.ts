/**
 * The whole-head upgrade parser: what it takes, and everything it leaves to
 * the HTTP server.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_HEAD_BYTES, MAX_HEADERS } from "../lib/limits.ts";
import { parseUpgradeHead } from "../lib/protocol/upgrade_head.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const HEAD = "GET /websockify?token=a%20b HTTP/1.1\r\nHost: example.com:6080\r\n" +
  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\nX-Empty:\r\nX-Spaces: \t a b \t\r\n\r\n";

describe("parseUpgradeHead()", () => {
  test("parses a whole upgrade head and says where the frames start", () => {
    const frames = [0x82, 0x85, 1, 2, 3, 4];
    const input = new Uint8Array([...bytes(HEAD), ...frames]);
    const head = parseUpgradeHead(input);
    assert.ok(head);
    assert.equal(head.path, "/websockify?token=a%20b");
    assert.equal(head.host, "example.com:6080");
    assert.equal(head.length, HEAD.length);
    assert.deepEqual([...input.subarray(head.length)], frames);
    assert.deepEqual(head.headers, [
      ["Host", "example.com:6080"],
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
      ["Sec-WebSocket-Version", "13"],
      ["X-Empty", ""],
      ["X-Spaces", "a b"],
    ]);
  });

  test("matches header names and tokens in any case, Connection in a list", () => {
    const head = parseUpgradeHead(bytes(
      "GET / HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\r\n",
    ));
    assert.equal(head?.path, "/");
    assert.equal(head?.host, undefined);
  });

  const refused: [string, string][] = [
    ["an incomplete head", HEAD.slice(0, -2)],
    ["a head with only LF line ends", HEAD.replaceAll("\r\n", "\n")],
    ["a bare LF inside a line", HEAD.replace("Host: ", "Host: a\nb")],
    ["another method", HEAD.replace("GET", "POST")],
    ["HTTP/1.0", HEAD.replace("HTTP/1.1", "HTTP/1.0")],
    ["an absolute-form target", HEAD.replace("GET /", "GET http://h/")],
    ["two spaces in the request line", HEAD.replace("GET /", "GET  /")],
    ["a folded header line", HEAD.replace("X-Empty:\r\n", "X-Empty: a\r\n b\r\n")],
    ["a space before the colon", HEAD.replace("X-Empty:", "X-Empty :")],
    ["a control character in a value", HEAD.replace("a b", "a\u0001b")],
    ["a non-ASCII byte", HEAD.replace("a b", "a\u00e9b")],
    ["a Content-Length", HEAD.replace("X-Empty:", "Content-Length: 0\r\nX-Empty:")],
    ["a Transfer-Encoding", HEAD.replace("X-Empty:", "Transfer-Encoding: chunked\r\nX-Empty:")],
    ["two Host headers", HEAD.replace("X-Empty:", "Host: other\r\nX-Empty:")],
    ["another protocol", HEAD.replace("Upgrade: websocket", "Upgrade: h2c")],
    ["no Upgrade header", HEAD.replace("Upgrade: websocket\r\n", "")],
    ["no upgrade in Connection", HEAD.replace("Connection: Upgrade", "Connection: keep-alive")],
    // Deno's node:http reads "close, upgrade\t,x" as a plain request, Node's as an upgrade.
    [
      "a tab in the Connection list",
      HEAD.replace("Connection: Upgrade", "Connection: upgrade\t,x"),
    ],
    [
      "a head past the size limit",
      HEAD.replace("X-Empty:", `X-Big: ${"a".repeat(MAX_HEAD_BYTES)}`),
    ],
  ];
  for (const [what, text] of refused) {
    test(`leaves ${what} to the HTTP server`, () => {
      assert.equal(parseUpgradeHead(bytes(text)), undefined);
    });
  }

  test("finds a head that ends exactly at the size limit, not one byte past it", () => {
    const pad = (n: number) => HEAD.replace("X-Empty:", `X-Pad: ${"a".repeat(n)}`);
    const n = MAX_HEAD_BYTES - HEAD.length + "X-Empty:".length - "X-Pad: ".length;
    assert.equal(pad(n).length, MAX_HEAD_BYTES);
    assert.equal(parseUpgradeHead(bytes(pad(n)))?.length, MAX_HEAD_BYTES);
    assert.equal(parseUpgradeHead(bytes(pad(n + 1))), undefined);
  });

  test("takes up to MAX_HEADERS header lines, not one more", () => {
    const lines = HEAD.split("\r\n").length - 3; // request line and the blank line
    const pad = (n: number) => HEAD.replace("X-Empty:", "X-Pad: a\r\n".repeat(n) + "X-Empty:");
    assert.ok(parseUpgradeHead(bytes(pad(MAX_HEADERS - lines))));
    assert.equal(parseUpgradeHead(bytes(pad(MAX_HEADERS - lines + 1))), undefined);
  });
});
