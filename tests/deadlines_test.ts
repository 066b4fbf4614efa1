/**
 * The shared deadline queue (lib/deadlines.ts) with real timers: never
 * early, stopped alarms stay silent, re-arming moves a deadline, many
 * deadlines share a handful of runtime timers, and a pending deadline does
 * not keep the process alive.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { Alarm, DeadlineQueue } from "../lib/deadlines.ts";
import { cliCommand, ROOT, spawnCommand, waitFor, within } from "./_harness.ts";

/** Records when it rings, on the queue's clock. */
class Probe extends Alarm {
  rang = -1;
  /** The earliest it may ring: when it was last armed plus the delay. */
  earliest = 0;
  constructor(readonly queue: DeadlineQueue, readonly onRing?: (p: Probe) => void) {
    super();
  }
  set(ms: number): this {
    this.earliest = this.queue.now() + ms;
    this.queue.arm(this, ms);
    return this;
  }
  ring(): void {
    this.rang = this.queue.now();
    this.onRing?.(this);
  }
}

/** Resolves once `queue` holds no armed alarm, polling; rejects after `ms`. */
function drained(queue: DeadlineQueue, ms: number): Promise<void> {
  return within(
    ms,
    new Promise<void>((resolve) => {
      const poll = () => (queue.size === 0 ? resolve() : void setTimeout(poll, 20));
      poll();
    }),
    "all alarms rung",
  );
}

describe("DeadlineQueue", () => {
  test("alarms of many delays ring, none before its deadline", async () => {
    const queue = new DeadlineQueue(100);
    const delays = [0, 1, 7, 30, 39, 40, 55, 120, 333, 800, 1500, 2600];
    const probes: Probe[] = [];
    // Armed in waves, so that each lane holds deadlines armed at different times.
    for (let wave = 0; wave < 3; wave++) {
      for (const ms of delays) probes.push(new Probe(queue).set(ms));
      await new Promise((r) => setTimeout(r, 15));
    }
    await drained(queue, 20000);
    for (const p of probes) {
      assert.ok(p.rang >= 0, "rang");
      assert.ok(p.rang >= p.earliest, `rang ${(p.earliest - p.rang).toFixed(2)} ms early`);
      assert.ok(!p.armed);
    }
  });

  test("a stopped alarm does not ring; re-arming moves its deadline", async () => {
    const queue = new DeadlineQueue(100);
    const stopped = new Probe(queue).set(50);
    const moved = new Probe(queue).set(50);
    const later = new Probe(queue).set(60);
    stopped.stop();
    assert.equal(stopped.armed, false);
    moved.set(2000); // later than `later`, in another lane
    await waitFor(() => later.rang >= 0, 10000, "the 60 ms alarm");
    assert.ok(later.rang >= later.earliest, "the 60 ms alarm rang early");
    assert.equal(moved.rang, -1, "the re-armed alarm rang at its old deadline");
    await drained(queue, 10000);
    assert.ok(moved.rang >= moved.earliest, "the re-armed alarm rang early");
    assert.equal(stopped.rang, -1, "a stopped alarm rang");
  });

  test("armAt() rings at an absolute time; an alarm may re-arm itself as it rings", async () => {
    const queue = new DeadlineQueue(100);
    const at = queue.now() + 200;
    const absolute = new Probe(queue);
    queue.armAt(absolute, at);
    let beats = 0;
    const beat = new Probe(queue, (p) => {
      if (++beats < 5) p.set(20);
    }).set(20);
    await drained(queue, 10000);
    assert.ok(absolute.rang >= at, "armAt() rang early");
    assert.equal(beats, 5);
    assert.equal(beat.armed, false);
  });

  test("alarms ring in deadline order within a lane", async () => {
    const queue = new DeadlineQueue(100);
    const order: number[] = [];
    const probes = Array.from({ length: 50 }, (_, i) => new Probe(queue, () => order.push(i)));
    for (const [i, p] of probes.entries()) {
      p.set(3000);
      // A few ms apart; a tenth of them stopped once others follow them.
      await new Promise((r) => setTimeout(r, 2));
      if (i % 10 === 9) probes[i - 9]!.stop();
    }
    await drained(queue, 20000);
    const expected = probes.map((_, i) => i).filter((i) => i % 10 !== 0);
    assert.deepEqual(order, expected);
  });

  test("thousands of deadlines share a handful of runtime timers", async () => {
    const queue = new DeadlineQueue(100);
    const real = globalThis.setTimeout;
    let timers = 0;
    // Counts the runtime timers set meanwhile; the timers themselves stay real.
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      timers++;
      return real(...args);
    }) as typeof setTimeout;
    const probes: Probe[] = [];
    const start = performance.now();
    let slots = 0;
    try {
      for (let i = 0; i < 3000; i++) {
        const p = new Probe(queue).set([1300, 1400, 1500][i % 3]!);
        // Like connections: most deadlines are stopped or re-armed before they are due.
        if (i % 2 === 0) p.stop();
        else if (i % 5 === 0) p.set(1350);
        probes.push(p);
      }
      assert.ok(timers <= 3, `${timers} runtime timers to arm 3000 deadlines`);
      // Delays this long share 32 ms slots: one wake-up per lane and slot at most.
      slots = 4 * (Math.ceil((performance.now() - start) / 32) + 2);
      const deadline = Date.now() + 10000;
      while (queue.size > 0 && Date.now() < deadline) await new Promise((r) => real(r, 20));
    } finally {
      globalThis.setTimeout = real;
    }
    assert.equal(probes.filter((p) => p.rang >= p.earliest).length, 1500);
    assert.ok(timers <= slots, `${timers} runtime timers for 1500 deadlines (${slots} slots)`);
  });

  test("a pending deadline does not keep the process alive", { timeout: 60000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-deadlines-"));
    const script = path.join(dir, "pending.ts");
    const lib = new URL(`file://${ROOT}lib/deadlines.ts`).href;
    fs.writeFileSync(
      script,
      `import { deadlines } from ${JSON.stringify(lib)};\n` +
        `deadlines.after(60000, () => console.log("rang"));\nconsole.log("armed");\n`,
    );
    try {
      const proc = spawnCommand([...cliCommand().slice(0, -1), script]);
      const code = await within(30000, proc.exited, "exit with a deadline pending")
        .finally(() => proc.kill("SIGKILL"));
      assert.equal(code, 0, proc.stderr);
      assert.equal(proc.stdout.trim(), "armed");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
