/**
 * Start-up time: from spawning `cli.ts` (or `dist/cli.js`) to its
 * "Listen on" line, median of five, for each runtime.
 *
 * Run: `node --import tsx bench/startup.ts` (build `dist/` first for the Node row).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = `${ROOT}node_modules/.bin`;
const RUNS: Record<string, [string, string[]]> = {
  deno: [`${BIN}/deno`, ["run", "-A", "cli.ts"]],
  bun: [`${BIN}/bun`, ["cli.ts"]],
  "node (dist)": ["node", ["dist/cli.js"]],
  "node (tsx)": ["node", ["--import", "tsx", "cli.ts"]],
};

/** Milliseconds until the banner's listen line, or NaN after 10 s. */
function once(cmd: string, args: string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args, "127.0.0.1:0", "127.0.0.1:5900"], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    let took = NaN;
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.stderr!.on("data", (d) => {
      err += d;
      if (Number.isNaN(took) && err.includes("Listen on")) {
        took = performance.now() - started;
        child.kill("SIGKILL");
      }
    });
    child.on("exit", () => {
      clearTimeout(timer);
      resolve(took);
    });
  });
}

for (const [name, [cmd, args]] of Object.entries(RUNS)) {
  if (name === "node (dist)" && !fs.existsSync(`${ROOT}dist/cli.js`)) {
    console.log(`${name.padEnd(12)} skipped: run npm run build first`);
    continue;
  }
  const times: number[] = [];
  for (let i = 0; i < 5; i++) times.push(await once(cmd, args));
  times.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(12)} median ${times[2]!.toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms`,
  );
}
