/**
 * The npm package as users get it: `npm pack` (which builds dist/ with tsc),
 * `npm install` of the tarball into an empty project, then the `websockify`
 * bin under Node and Bun and the library entry under Node.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import process from "node:process";
import { USAGE } from "../lib/cli.ts";
import { ROOT, RUNTIME } from "./_harness.ts";
import { after, capability, describe, test } from "./_skip.ts";

const SKIP = RUNTIME === "node"
  ? false
  : capability("npm pack + npm install take a while: the packaging test runs under Node only");

const BUN = join(ROOT, "node_modules", ".bin", "bun");

/**
 * The environment for child commands: without the `npm_*` variables of an
 * enclosing `npm test` (npm_config_local_prefix would point `npm install` back
 * at this repository), with Bun on PATH for `bun x`.
 */
function env(): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "INIT_CWD"),
  );
  return { ...clean, NO_COLOR: "1", PATH: `${dirname(BUN)}${delimiter}${process.env.PATH}` };
}

/** Runs a command to completion within `ms`; rejects with its output on failure. */
function run(cmd: string, args: string[], cwd: string, ms = 60000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd, env: env(), timeout: ms, killSignal: "SIGKILL", maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${cmd} ${args.join(" ")}: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

describe("npm package", { skip: SKIP, timeout: 300000 }, () => {
  let tmp: string | undefined;
  let installed: Promise<string> | undefined;

  /** Packs and installs once, for every test; resolves with the project dir. */
  function install(): Promise<string> {
    installed ??= (async () => {
      tmp = await mkdtemp(join(tmpdir(), "websockify-pack-"));
      const project = join(tmp, "project");
      await mkdir(project);
      await run("npm", ["pack", "--silent", "--pack-destination", tmp], ROOT, 120000);
      const tarball = (await readdir(tmp)).find((f) => f.endsWith(".tgz"));
      assert.ok(tarball, "npm pack wrote no tarball");
      await writeFile(
        join(project, "package.json"),
        JSON.stringify({ name: "pack-test", private: true, type: "module" }),
      );
      await run("npm", ["install", "--no-audit", "--no-fund", join(tmp, tarball)], project, 180000);
      return project;
    })();
    return installed;
  }

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test("npx websockify --help runs the built bin on Node", async () => {
    const stdout = await run("npx", ["websockify", "--help"], await install());
    assert.ok(stdout.startsWith(USAGE), stdout);
    assert.match(stdout, /--unix-target=FILE/);
  });

  test("bun x --bun websockify --help runs the built bin on Bun", async () => {
    const stdout = await run(BUN, ["x", "--bun", "websockify", "--help"], await install());
    assert.ok(stdout.startsWith(USAGE), stdout);
  });

  test("websockify() from the installed package starts and closes a proxy", async () => {
    const script = `
      const { websockify } = await import("@websockify/websockify");
      const server = await websockify({ listen: { port: 0 }, target: "127.0.0.1:5900" });
      console.log("listening on " + server.addr.port);
      await server.close();
    `;
    const stdout = await run(
      process.execPath,
      ["--input-type=module", "-e", script],
      await install(),
    );
    assert.match(stdout, /^listening on [1-9]\d*\n$/);
  });
});
