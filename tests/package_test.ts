/**
 * The npm package as users get it: `npm pack` (which builds dist/ with tsc),
 * `npm install` of the tarball into an empty project, then the `websockify`
 * bin under Node and Bun, the library entry under Node, and the built
 * browser client (`web/`) served by the installed bin.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import process from "node:process";
import { USAGE } from "../lib/cli/args.ts";
import {
  closed,
  freePort,
  httpGet,
  openClient,
  receive,
  ROOT,
  RUNTIME,
  startEchoServer,
  waitFor,
  within,
} from "./_harness.ts";
import { after, capability, describe, needs, test } from "./_skip.ts";

const NOVNC_PROXY = "/usr/share/novnc/utils/novnc_proxy";

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

  test("noVNC's novnc_proxy runs the installed websockify from PATH", {
    skip: needs("noVNC's novnc_proxy", existsSync(NOVNC_PROXY), "apt-get install novnc"),
  }, async () => {
    const project = await install();
    const bin = join(project, "node_modules", ".bin");
    // A copy with no websockify folder beside it, so that novnc_proxy looks on PATH.
    const dir = await mkdtemp(join(tmp!, "novnc-"));
    await copyFile(NOVNC_PROXY, join(dir, "novnc_proxy"));
    const echo = await startEchoServer();
    const port = await freePort();
    const proxy = spawn(join(dir, "novnc_proxy"), [
      ...["--listen", String(port), "--vnc", `127.0.0.1:${echo.port}`],
      ...["--web", "/usr/share/novnc"],
    ], { cwd: dir, env: { ...env(), PATH: `${bin}${delimiter}${env().PATH}` } });
    let out = "";
    proxy.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    proxy.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise((resolve) => proxy.once("exit", resolve));
    try {
      await waitFor(() => out.includes("proxying from"), 30000, "proxy start").catch(() => {
        throw new Error(`no banner: ${out}`);
      });
      assert.match(out, new RegExp(`Using installed websockify at ${bin}/websockify\n`));
      const ws = await within(10000, openClient(port, ["binary"]), "ws open");
      const back = receive(ws, 5);
      ws.send(new TextEncoder().encode("hello"));
      assert.equal(new TextDecoder().decode(await within(10000, back, "echo")), "hello");
      ws.close();
      await closed(ws);
    } finally {
      // novnc_proxy's trap stops the proxy it started.
      if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill("SIGTERM");
      await within(15000, exited, "novnc_proxy exit");
      await echo.close();
    }
  });

  test("the installed bin serves the built wstelnet page and its modules", async () => {
    const project = await install();
    const web = join(project, "node_modules", "@websockify", "websockify", "web");
    const bin = join(project, "node_modules", ".bin", "websockify");
    const proxy = spawn(bin, ["--web", web, "127.0.0.1:0", "127.0.0.1:1"], {
      cwd: project,
      env: env(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    proxy.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise((resolve) => proxy.once("exit", resolve));
    try {
      const port = await within(
        30000,
        new Promise<number>((resolve, reject) => {
          proxy.stderr!.on("data", () => {
            const m = /Listen on .*:(\d+)/.exec(stderr);
            if (m) resolve(Number(m[1]));
          });
          proxy.once("exit", () => reject(new Error(`exited: ${stderr}`)));
        }),
        "installed proxy start",
      );
      const page = await httpGet(port, "/wstelnet.html");
      assert.equal(page.status, 200, stderr);
      assert.match(page.body, /<script type="module" src="wstelnet\.js">/);
      assert.equal((await httpGet(port, "/wstelnet.css")).status, 200);
      // Every module the page loads, following relative imports (a bounded walk).
      const seen = new Set<string>();
      const todo = ["wstelnet.js"];
      while (todo.length > 0 && seen.size < 20) {
        const file = todo.shift()!;
        if (seen.has(file)) continue;
        seen.add(file);
        const res = await httpGet(port, `/${file}`);
        assert.equal(res.status, 200, file);
        assert.match(res.headers["content-type"]!, /^text\/javascript/, file);
        for (const m of res.body.matchAll(/^import .* from "\.\/([\w.]+)";$/gm)) todo.push(m[1]!);
      }
      const modules = (await readdir(join(ROOT, "client"))).filter((f) => f.endsWith(".ts"));
      assert.deepEqual([...seen].sort(), modules.map((f) => f.replace(/\.ts$/, ".js")).sort());
    } finally {
      proxy.kill("SIGTERM");
      await within(10000, exited, "installed proxy exit");
    }
  });
});
