/**
 * The header of a report: machine, runtime versions and sizes, so that a
 * pasted table says what it was measured on.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { proxyCommand, ROOT, type ServerName } from "./_proc.ts";
import type { Config } from "./_suite.ts";

function version(bin: string, flag = "--version"): string {
  const out = spawnSync(bin, [flag], {
    encoding: "utf8",
    timeout: 15_000,
  });
  return (out.stdout || out.stderr || "?").trim().split("\n")[0]!;
}

function whereIs(command: string): string {
  return spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).stdout.trim();
}

/** True if `bufferutil` loads here, as `ws` would load it. */
function hasBufferutil(): boolean {
  try {
    createRequire(path.join(ROOT, "package.json"))("bufferutil");
    return true;
  } catch {
    return false;
  }
}

/** Markdown bullet lines describing this run. */
export function environment(config: Config, servers: ServerName[]): string {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const ws = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/ws/package.json"), "utf8"));
  const versions = servers.map((s) => {
    const cmd = proxyCommand(s);
    if (s === "python") return `python websockify (${whereIs("websockify")})`;
    if (s === "node") return `node ${process.version}`;
    if (s === "relay") return `relay (bare node:net pipe, node ${process.version})`;
    if (s === "lighttpd") return `${version(cmd[0]!, "-v").split(" ")[0]} mod_wstunnel`;
    const v = version(cmd[0]!).replace(/ \(.*\)$/, "");
    return v.startsWith(s) ? v : `${s} ${v}`;
  });
  return [
    `- Command: \`${["node --import tsx bench/run.ts", ...process.argv.slice(2)].join(" ")}\``,
    `- Machine: ${os.cpus().length} × ${cpu ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB,` +
    ` Linux ${os.release()}`,
    `- Proxies: ${versions.join(", ")}`,
    `- Client and target: Node ${process.version}, ws ${ws.version}` +
    `, bufferutil ${
      hasBufferutil() ? "yes" : "no"
    }, \`GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}\`` +
    " (proxies run without it)",
    `- Sizes: ${config.mib} MiB per direction in 64 KiB messages;` +
    ` ${config.conns.join(" and ")} concurrent connections; ${config.reps} alternating` +
    ` raw/proxy runs per cell; a fresh proxy process per group of measurements`,
    `- Load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}` +
    " (other processes add noise to the absolute numbers)",
  ].join("\n");
}
