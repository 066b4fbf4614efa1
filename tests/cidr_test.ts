/**
 * `lib/net/cidr.ts`, the one parser of IP addresses and CIDR blocks behind
 * `--allow-client`, `--trusted-proxy`, `--allow-target` and the PROXY
 * headers: tables of addresses, blocks, matches and per-address keys, then
 * the addresses real loopback sockets report (a dual-stack listener's IPv4
 * peers as IPv4-mapped IPv6) matched and keyed as their IPv4 address.
 */
import assert from "node:assert/strict";
import net from "node:net";
import {
  addressKey,
  cidrContains,
  parseCidr,
  parseCidrList,
  parseIp,
  unmapped,
} from "../lib/net/cidr.ts";
import { within } from "./_harness.ts";
import { describe, NO_IPV6, test } from "./_skip.ts";

describe("parseIp()", () => {
  test("good addresses, as written", () => {
    const good: [string, number[]][] = [
      ["0.0.0.0", [0, 0, 0, 0]],
      ["10.0.0.1", [10, 0, 0, 1]],
      ["255.255.255.255", [255, 255, 255, 255]],
      ["::", new Array(16).fill(0)],
      ["::1", [...new Array(15).fill(0), 1]],
      ["2001:DB8::a", [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 0x0a]],
      ["1:2:3:4:5:6:7:8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
      ["1:2:3:4:5:6::8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 0, 0, 8]],
      ["::ffff:1.2.3.4", [...new Array(10).fill(0), 255, 255, 1, 2, 3, 4]],
      ["1:2:3:4:5:6:1.2.3.4", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4]],
    ];
    for (const [text, bytes] of good) {
      assert.deepEqual(parseIp(text), new Uint8Array(bytes), text);
    }
    // The test this table absorbed from tests/allow_target_test.ts.
    assert.deepEqual(parseIp("::"), new Uint8Array(16));
    assert.deepEqual(
      parseIp("::ffff:1.2.3.4")?.subarray(10),
      new Uint8Array([255, 255, 1, 2, 3, 4]),
    );
  });

  test("anything else is no address", () => {
    const bad = [
      "",
      "1.2.3",
      "1.2.3.04",
      "01.2.3.4",
      "256.1.1.1",
      "1.2.3.4.5",
      "1.2.3.-1",
      "0x1.2.3.4",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::8",
      "1::2::3",
      ":::",
      "1:2:3:4:5:6:7",
      "::g",
      "12345::",
      "1.2.3.4::",
      "::1.2.3.4:1",
      "::1.2.3",
      "fe80::1%eth0",
      "10.0.0.1%1",
      "[::1]",
      "::1/128",
      "example.com",
      "/run/ws.sock",
    ];
    for (const text of bad) assert.equal(parseIp(text), undefined, JSON.stringify(text));
  });

  test("unmapped(): an IPv4-mapped address as its IPv4 address", () => {
    const cases: [string, string][] = [
      ["::ffff:10.0.0.1", "10.0.0.1"],
      ["::FFFF:a00:1", "10.0.0.1"],
      ["10.0.0.1", "10.0.0.1"],
      ["::1", "::1"],
      ["::10.0.0.1", "::10.0.0.1"], // IPv4-compatible, not mapped
      ["1::ffff:10.0.0.1", "1::ffff:10.0.0.1"],
    ];
    for (const [text, want] of cases) {
      assert.deepEqual(unmapped(parseIp(text)!), parseIp(want), text);
    }
  });
});

describe("CIDR blocks", () => {
  test("parseCidr(): address and prefix, mapped blocks as IPv4", () => {
    const good: [string, number[], number][] = [
      ["10.0.0.0/8", [10, 0, 0, 0], 8],
      ["10.1.2.3", [10, 1, 2, 3], 32],
      ["0.0.0.0/0", [0, 0, 0, 0], 0],
      ["10.0.0.0/08", [10, 0, 0, 0], 8],
      ["::1", [...new Array(15).fill(0), 1], 128],
      ["::/0", new Array(16).fill(0), 0],
      ["::ffff:10.0.0.0/104", [10, 0, 0, 0], 8],
      ["::ffff:10.0.0.1", [10, 0, 0, 1], 32],
      ["::ffff:0:0/96", [0, 0, 0, 0], 0],
    ];
    for (const [text, bytes, prefix] of good) {
      assert.deepEqual(parseCidr(text), { bytes: new Uint8Array(bytes), prefix }, text);
    }
    const bad = ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "host/8"];
    for (const text of [...bad, "1.2.3", "1::2::3", "", "fe80::/10%eth0", "fe80::1%eth0/64"]) {
      assert.equal(parseCidr(text), undefined, JSON.stringify(text));
    }
  });

  test("parseCidrList(): every entry a block, else a TypeError naming it", () => {
    assert.equal(parseCidrList("10.0.0.0/8, ::1,192.0.2.1").length, 3);
    assert.equal(parseCidrList(["10.0.0.0/8", "::1, fd00::/8"]).length, 3);
    assert.deepEqual(parseCidrList([]), []);
    for (const bad of ["10.0.0.0/33", "::/129", "host/8", "1.2.3", "1::2::3", ""]) {
      assert.throws(() => parseCidrList(bad), TypeError, bad);
    }
    for (const bad of ["10.0.0.0/8,", "10.0.0.0/8,,::1", " , ", "fe80::1%eth0"]) {
      assert.throws(() => parseCidrList(bad), TypeError, JSON.stringify(bad));
    }
    assert.throws(
      () => parseCidrList("10.0.0.0/8, 10.0.0.300"),
      { name: "TypeError", message: "'10.0.0.300' is not an IP address or CIDR block" },
    );
  });

  test("cidrContains(): IPv4, IPv4-mapped and IPv6 addresses", () => {
    const blocks = parseCidrList("127.0.0.0/8, 2001:db8::/32, ::ffff:192.168.0.0/112, fe80::/10");
    const cases: [string, boolean][] = [
      ["127.1.2.3", true],
      ["::ffff:127.0.0.1", true],
      ["::FFFF:7f00:1", true],
      ["128.0.0.1", false],
      ["2001:db8:ffff::1", true],
      ["2001:0db8:0:0:0:0:0:1", true],
      ["2001:db9::1", false],
      ["192.168.3.4", true], // a mapped block is its IPv4 block
      ["::ffff:192.168.3.4", true],
      ["192.169.0.1", false],
      ["fe80::1", true],
      ["febf:ffff::1", true],
      ["fec0::1", false],
      ["fe80::1%eth0", false], // zone ids are no part of an address
      ["::7f00:1", false], // IPv4-compatible is not mapped
      ["/run/ws.sock", false],
      ["localhost", false],
      ["", false],
    ];
    for (const [address, want] of cases) {
      assert.equal(cidrContains(blocks, address), want, address);
    }
    assert.ok(cidrContains(parseCidrList("10.1.1.1"), "10.1.1.1"));
    assert.ok(!cidrContains(parseCidrList("10.1.1.1"), "10.1.1.2"));
    assert.ok(!cidrContains([], "10.1.1.1"));
  });

  test("cidrContains(): prefix edges, and IPv6 blocks never hold IPv4 addresses", () => {
    const cases: [string, string, boolean][] = [
      ["10.0.0.0/9", "10.127.255.255", true],
      ["10.0.0.0/9", "10.128.0.0", false],
      ["10.1.2.3/31", "10.1.2.2", true],
      ["10.1.2.3/31", "10.1.2.4", false],
      ["0.0.0.0/0", "255.255.255.255", true],
      ["0.0.0.0/0", "::ffff:1.2.3.4", true],
      ["0.0.0.0/0", "::1", false],
      ["2001:db8::/33", "2001:db8:7fff::1", true],
      ["2001:db8::/33", "2001:db8:8000::1", false],
      // A v6 block shorter than the mapped range does not reach IPv4 peers.
      ["::/0", "::1", true],
      ["::/0", "10.0.0.1", false],
      ["::/0", "::ffff:10.0.0.1", false],
      ["::ffff:0:0/95", "::ffff:10.0.0.1", false],
      ["::ffff:0:0/96", "10.0.0.1", true],
    ];
    for (const [block, address, want] of cases) {
      assert.equal(cidrContains(parseCidrList(block), address), want, `${address} in ${block}`);
    }
  });
});

describe("addressKey()", () => {
  test("per-address keys: IPv4 as is, IPv6 by /64", () => {
    assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
    assert.equal(addressKey("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(addressKey("2001:db8:0:1::a"), addressKey("2001:db8:0:1:ffff::b"));
    assert.notEqual(addressKey("2001:db8:0:1::a"), addressKey("2001:db8:0:2::a"));
    const cases: [string, string][] = [
      ["2001:db8:1:2:a::1", "2001:db8:1:2::/64"],
      ["2001:DB8:0001:0002::", "2001:db8:1:2::/64"],
      ["::1", "0:0:0:0::/64"],
      ["/run/ws.sock", "/run/ws.sock"],
      ["fe80::1%eth0", "fe80::1%eth0"], // no address: counted as it is
    ];
    for (const [address, key] of cases) assert.equal(addressKey(address), key, address);
  });
});

/** The address a listener on `host` sees for a client connecting from `from`. */
async function peerAddress(host: string, from: string): Promise<string> {
  const server = net.createServer();
  try {
    const seen = new Promise<string>((resolve) => {
      server.once("connection", (sock) => {
        resolve(sock.remoteAddress ?? "");
        sock.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, resolve);
    });
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect({ host: from, port });
    client.on("error", () => {});
    try {
      return await within(5000, seen, `a connection from ${from} to ${host}`);
    } finally {
      client.destroy();
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("addresses real sockets report", { skip: NO_IPV6 }, () => {
  test("a dual-stack listener's IPv4 peer matches and counts as IPv4", async () => {
    const blocks = parseCidrList("127.0.0.0/8");
    for (const [host, from] of [["127.0.0.1", "127.0.0.1"], ["::", "127.0.0.1"]]) {
      const peer = await peerAddress(host!, from!);
      assert.ok(parseIp(peer), peer);
      assert.ok(cidrContains(blocks, peer), `${peer} (listening on ${host})`);
      assert.ok(!cidrContains(parseCidrList("::/0"), peer), peer);
      assert.equal(addressKey(peer), "127.0.0.1");
    }
    const peer6 = await peerAddress("::", "::1");
    assert.deepEqual(parseIp(peer6), parseIp("::1"));
    assert.ok(cidrContains(parseCidrList("::1"), peer6));
    assert.ok(!cidrContains(blocks, peer6));
    assert.equal(addressKey(peer6), "0:0:0:0::/64");
  });
});
