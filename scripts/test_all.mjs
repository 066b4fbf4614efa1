#!/usr/bin/env node
/**
 * Runs the whole suite under Deno, Bun and Node in turn (Node last, so its
 * summary closes the run), streams their output, then prints one summary line
 * per runtime and a total. Exits 1 if any runtime failed. No dependencies.
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
/** Per runtime; far above a normal run, well under CI's limit. */
const TIMEOUT_MS = 20 * 60 * 1000;

const testFiles = readdirSync(join(ROOT, "tests"))
  .filter((f) => f.endsWith("_test.ts"))
  .sort()
  .map((f) => join("tests", f));

const RUNS = [
  { name: "deno", cmd: join(BIN, "deno"), args: ["test", "-A", "tests/"] },
  { name: "bun", cmd: join(BIN, "bun"), args: ["test", "tests/"] },
  { name: "node", cmd: process.execPath, args: ["--import", "tsx", "--test", ...testFiles] },
];

/** Pulls pass/fail/skip counts from each runner's closing lines. */
function counts(name, output) {
  // deno and bun color their output even into a pipe.
  // deno-lint-ignore no-control-regex
  const text = output.replace(/\x1b\[[0-9;]*m/g, "");
  const num = (re) => {
    const all = [...text.matchAll(re)];
    return all.length ? Number(all[all.length - 1][1]) : undefined;
  };
  if (name === "deno") {
    // "ok | 2 passed (33 steps) | 0 failed (1 step) | 1 ignored": steps are node:test's tests.
    const line = text.split("\n").findLast((l) => /^(ok|FAILED) \| /.test(l)) ?? "";
    const part = (word) => {
      const m = new RegExp(`(\\d+) ${word}(?: \\((\\d+) steps?\\))?`).exec(line);
      return m ? Number(m[2] ?? m[1]) : undefined;
    };
    return { passed: part("passed"), failed: part("failed"), skipped: part("ignored") ?? 0 };
  }
  if (name === "bun") {
    return {
      passed: num(/^ *(\d+) pass$/gm),
      failed: num(/^ *(\d+) fail$/gm),
      skipped: num(/^ *(\d+) skip$/gm) ?? 0,
    };
  }
  return {
    passed: num(/^# pass (\d+)$/gm),
    failed: num(/^# fail (\d+)$/gm),
    skipped: num(/^# skipped (\d+)$/gm) ?? 0,
  };
}

let current;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (current) process.kill(-current.pid, "SIGKILL");
    process.exit(130);
  });
}

/** Runs one runtime's suite, teeing its output; resolves with exit code and output tail. */
function runOne({ cmd, args }) {
  return new Promise((resolve) => {
    let tail = "";
    const keep = (chunk, out) => {
      out.write(chunk);
      tail = (tail + chunk.toString()).slice(-65536);
    };
    // Own process group, so a timeout can kill the runner and its children.
    const child = spawn(cmd, args, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    current = child;
    child.stdout.on("data", (c) => keep(c, process.stdout));
    child.stderr.on("data", (c) => keep(c, process.stderr));
    const timer = setTimeout(() => {
      tail += `\ntest_all: timed out after ${TIMEOUT_MS / 1000} s\n`;
      process.kill(-child.pid, "SIGKILL");
    }, TIMEOUT_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, tail: String(error) });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      current = undefined;
      resolve({ code: code ?? 1, signal, tail });
    });
  });
}

const results = [];
for (const run of RUNS) {
  process.stdout.write(`\n=== ${run.name}: ${[run.cmd, ...run.args].join(" ")}\n\n`);
  const started = Date.now();
  const { code, signal, tail } = await runOne(run);
  results.push({
    ...run,
    code,
    signal,
    seconds: (Date.now() - started) / 1000,
    ...counts(run.name, tail),
  });
}

process.stdout.write("\n");
const total = { passed: 0, failed: 0, skipped: 0 };
for (const r of results) {
  // A runner that died without a summary, or failed with none counted, is one failure.
  const failed = r.failed || (r.code !== 0 ? 1 : 0);
  total.passed += r.passed ?? 0;
  total.failed += failed;
  total.skipped += r.skipped;
  const status = r.code === 0 ? "ok" : `FAILED (${r.signal ?? `exit ${r.code}`})`;
  process.stdout.write(
    `${r.name}: ${r.passed ?? "?"} passed, ${failed} failed, ${r.skipped} skipped` +
      ` - ${status} in ${r.seconds.toFixed(1)} s\n`,
  );
}
process.stdout.write(
  `total: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`,
);
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
