#!/usr/bin/env node
/**
 * Runs the whole suite under Deno, Bun and Node in turn (Node last, so its
 * summary closes the run), streams their output, then prints one summary line
 * per runtime and a total, after the list of every test that did not run and
 * why. Exits 1 if any runtime failed. No dependencies.
 *
 * Runners count skips differently (a skipped suite is nothing to Node and
 * Bun, one test to Deno), so skips go through tests/_skip.ts, which appends
 * one JSON line per skipped test to the file in TEST_SKIP_LOG; those records
 * are the skip count. A runner that counts more skips than were recorded has
 * a skip that bypassed tests/_skip.ts: the difference is listed and counted.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
/** Per runtime; far above a normal run, well under CI's limit. */
const TIMEOUT_MS = 20 * 60 * 1000;

// Test files given as arguments (paths from the repository root) run instead of all.
const chosen = process.argv.slice(2);
const testFiles = chosen.length ? chosen : readdirSync(join(ROOT, "tests"))
  .filter((f) => f.endsWith("_test.ts"))
  .sort()
  .map((f) => join("tests", f));
const dirOrFiles = chosen.length ? chosen.map((f) => `./${f}`) : ["tests/"];

const RUNS = [
  { name: "deno", cmd: join(BIN, "deno"), args: ["test", "-A", ...dirOrFiles] },
  // Bun gives each test 5 s and ignores suite timeouts; Node and Deno set no default.
  { name: "bun", cmd: join(BIN, "bun"), args: ["test", "--timeout", "120000", ...dirOrFiles] },
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
    // "ok | 2 passed (33 steps) | 0 failed (1 step) | 1 ignored (4 steps)": steps are
    // node:test's tests. An ignored test outside any describe is a test, not a step.
    const line = text.split("\n").findLast((l) => /^(ok|FAILED) \| /.test(l)) ?? "";
    const match = (word) => new RegExp(`(\\d+) ${word}(?: \\((\\d+) steps?\\))?`).exec(line);
    const part = (word) => {
      const m = match(word);
      return m ? Number(m[2] ?? m[1]) : undefined;
    };
    const ignored = match("ignored");
    const skipped = ignored ? Number(ignored[1]) + Number(ignored[2] ?? 0) : 0;
    return { passed: part("passed"), failed: part("failed"), skipped };
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

/** The skip records a run left in `file` (one JSON object per line). */
function skipRecords(file) {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return { file: null, name: l, reason: "unreadable skip record" };
    }
  });
}

/** Runs one runtime's suite, teeing its output; resolves with exit code and output tail. */
function runOne({ cmd, args }, env) {
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
      env: { ...process.env, ...env },
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

const skipDir = mkdtempSync(join(tmpdir(), "test_all-"));
const results = [];
for (const run of RUNS) {
  process.stdout.write(`\n=== ${run.name}: ${[run.cmd, ...run.args].join(" ")}\n\n`);
  const started = Date.now();
  const skipLog = join(skipDir, `${run.name}.jsonl`);
  const { code, signal, tail } = await runOne(run, { TEST_SKIP_LOG: skipLog });
  const counted = counts(run.name, tail);
  const skips = skipRecords(skipLog);
  const recorded = skips.length;
  const unrecorded = counted.skipped - recorded;
  if (unrecorded > 0) {
    skips.push({
      file: null,
      name: `${unrecorded} more`,
      reason: "counted by the runner but not recorded: a skip that bypasses tests/_skip.ts",
    });
  }
  results.push({
    ...run,
    code,
    signal,
    seconds: (Date.now() - started) / 1000,
    ...counted,
    skipped: Math.max(counted.skipped, recorded),
    skips,
  });
}
rmSync(skipDir, { recursive: true, force: true });

process.stdout.write("\n");
const skipped = results.flatMap((r) => r.skips.map((s) => ({ runtime: r.name, ...s })));
if (skipped.length) {
  process.stdout.write("did not run:\n");
  for (const s of skipped) {
    const where = s.file ? `${s.file}: ` : "";
    process.stdout.write(`  ${s.runtime}  ${where}${s.name} - ${s.reason}\n`);
  }
  process.stdout.write("\n");
}
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
