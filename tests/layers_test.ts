/**
 * The layer checker (`scripts/check_layers.mjs`), run as CI runs it, under
 * the current runtime: on small trees with and without violations (exit code
 * and the exact lines), then on this repository, which must pass.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { after, describe, test } from "node:test";
import { ROOT, RUNTIME } from "./_harness.ts";

const SCRIPT = join(ROOT, "scripts", "check_layers.mjs");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the checker on `root` under the current runtime. */
function check(root: string): Promise<Run> {
  const args = RUNTIME === "deno" ? ["run", "-A", SCRIPT, root] : [SCRIPT, root];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { timeout: 60000, env: { ...process.env, NO_COLOR: "1" } },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        if (typeof code !== "number") reject(err);
        else resolve({ code, stdout, stderr });
      },
    );
  });
}

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A temporary tree with `files` (path from the root to contents). */
async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "layers-"));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

/** The violation lines of a run, without the closing count line. */
const lines = (run: Run) =>
  run.stderr.split("\n").filter((l) => l && !l.startsWith("check_layers:"));

describe("check_layers", () => {
  test("passes a tree that keeps its layers, whatever comments and strings say", async () => {
    const root = await tree({
      "mod.ts": `export * from "./lib/a.ts";\n`,
      "lib/a.ts": [
        `import { Hono } from "hono";`,
        `import type { B } from "./b/b.ts";`,
        `// process.env, Deno.exit() and Buffer.from() in a comment`,
        `/* import fs from "node:fs"; Bun.serve() */`,
        `const s = "process Deno Bun Buffer";`,
        `const t = \`Buffer \${s.length} process \${{ a: "Deno" }.a}\`;`,
        `const r = /"process"|'Deno'/g;`,
        `const o = { s, t, r, size: 1 / 2 };`,
        `const p = o.process ?? globalThis.Deno;`,
        `export const app = new Hono();`,
        `export { p };`,
        ``,
      ].join("\n"),
      "lib/b/b.ts": `export type B = import("../a.ts").A;\nexport * from "../a.ts";\n`,
      "lib/cli/args.ts": `import { parseArgs } from "node:util";\nexport { parseArgs };\n`,
      "adapters/x.ts": [
        `import fs from "node:fs";`,
        `import process from "node:process";`,
        `import { app } from "../lib/a.ts";`,
        `// import { websockify } from "../mod.ts";`,
        `export const x = [fs, process, app, Buffer, "../cli.ts"];`,
        ``,
      ].join("\n"),
    });
    const run = await check(root);
    assert.deepEqual(lines(run), []);
    assert.equal(run.code, 0);
  });

  test("fails with one line per violation", async () => {
    const root = await tree({
      "mod.ts": `export {};\n`,
      "cli.ts": `export {};\n`,
      "lib/fs.ts": `import fs from "node:fs";\nexport { fs };\n`,
      "lib/up.ts": `import { x } from "../adapters/x.ts";\nexport { x };\n`,
      "lib/util.ts": `export { parseArgs } from "node:util";\n`,
      "lib/dyn.ts": `export const load = (name: string) => import(name);\n`,
      "lib/globals.ts": [
        `export const env = process.env;`,
        `export const b = Buffer.from("x");`,
        `export const pid = \`\${Deno.pid}\`;`,
        `export type Runtime = typeof Bun;`,
        ``,
      ].join("\n"),
      "adapters/x.ts": `import { y } from "../mod.ts";\nexport const x = y;\n`,
      "adapters/deep/z.ts": `export * from "../../cli.ts";\n`,
      "adapters/named.ts": `import type { W } from "@websockify/websockify";\nexport type { W };\n`,
    });
    const run = await check(root);
    assert.equal(run.code, 1);
    assert.deepEqual(lines(run).sort(), [
      `adapters/deep/z.ts:1: imports cli.ts; adapters/ must not depend on the entries`,
      `adapters/named.ts:1: imports mod.ts; adapters/ must not depend on the entries`,
      `adapters/x.ts:1: imports mod.ts; adapters/ must not depend on the entries`,
      `lib/dyn.ts:1: imports a computed specifier; lib/ imports only lib/ files and hono`,
      `lib/fs.ts:1: imports "node:fs"; lib/ imports only lib/ files and hono`,
      `lib/globals.ts:1: uses process; lib/ stays runtime-neutral`,
      `lib/globals.ts:2: uses Buffer; lib/ stays runtime-neutral`,
      `lib/globals.ts:3: uses Deno; lib/ stays runtime-neutral`,
      `lib/globals.ts:4: uses Bun; lib/ stays runtime-neutral`,
      `lib/up.ts:1: imports "../adapters/x.ts" (adapters/x.ts), outside lib/`,
      `lib/util.ts:1: imports "node:util"; lib/ imports only lib/ files and hono`,
    ]);
    assert.match(run.stderr, /check_layers: 11 layer violation\(s\)/);
  });

  test("refuses a root without lib/", async () => {
    const root = await tree({ "mod.ts": `export {};\n` });
    const run = await check(root);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^check_layers: no lib\/ directory in /);
  });

  test("passes this repository", async () => {
    const run = await check(ROOT);
    assert.equal(run.stderr, "");
    assert.equal(run.code, 0);
  });
});
