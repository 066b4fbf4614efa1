#!/usr/bin/env node
/**
 * The `websockify` command: parses arguments, starts the proxy, logs to
 * stderr and exits 0 on SIGINT/SIGTERM after closing sessions with 1001.
 *
 * @module
 */
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { resolveHost } from "./adapters/node.ts";
import type { TlsOptions } from "./adapters/tls.ts";
import {
  type CliOptions,
  type CliTls,
  describeError,
  HELP,
  parseCliArgs,
  USAGE,
} from "./lib/cli.ts";
import { createLogger } from "./lib/log.ts";
import { formatAddr, formatTarget, UsageError } from "./lib/target.ts";
import { ConfigError, websockify } from "./mod.ts";

function fail(message: string, status: number): never {
  process.stderr.write(`websockify: error: ${message}\n`);
  process.exit(status);
}

/** Parses `argv`; on a usage error prints usage and exits 2, as optparse does. */
function parseOrExit(argv: string[]): CliOptions {
  try {
    return parseCliArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${USAGE}\n\n`);
    return fail(error.message, 2);
  }
}

/** Server TLS from the options: `--cert`, else `self.pem` in the start-up directory if present. */
function serverTls(cli: CliTls): TlsOptions | undefined {
  const cert = path.resolve(cli.cert ?? "self.pem");
  if (cli.cert === undefined && !fs.existsSync(cert)) {
    if (cli.sslOnly || cli.verifyClient) {
      process.stderr.write(`${USAGE}\n\n`);
      fail(`SSL only and ${cert} not found`, 2);
    }
    return undefined;
  }
  const passphrase = cli.passphrase ?? process.env.WEBSOCKIFY_KEY_PASSWORD;
  return { ...cli, cert, key: cli.key && path.resolve(cli.key), passphrase };
}

async function main(argv: string[]): Promise<void> {
  const options = parseOrExit(argv);
  if (options.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const log = createLogger({
    write: (line) => process.stderr.write(`${line}\n`),
    traffic: options.traffic ? (token) => process.stdout.write(token) : undefined,
    verbose: options.verbose,
  });
  const { target } = options;
  if (target.kind === "tcp") {
    await resolveHost(target.hostname).catch((error) =>
      fail(`Cannot resolve target host "${target.hostname}": ${describeError(error)}`, 1)
    );
  }
  const listenText = formatAddr({
    hostname: options.listen.hostname || (options.preferIpv6 ? "::" : "0.0.0.0"),
    port: options.listen.port,
  });
  const tls = serverTls(options.tls);
  const targetCa = options.tls.targetCa;
  const server = await websockify({
    listen: options.listen,
    target,
    preferIpv6: options.preferIpv6,
    heartbeat: options.heartbeat,
    logger: log,
    tls,
    sslOnly: options.tls.sslOnly,
    targetCa: targetCa === undefined ? undefined : fs.readFileSync(targetCa, "utf8"),
    web: options.web,
    fileOnly: options.fileOnly,
  }).catch((error) =>
    fail(
      error instanceof ConfigError
        ? error.message
        : `Cannot listen on ${listenText}: ${describeError(error)}`,
      1,
    )
  );

  log.info("WebSocket server settings:");
  log.info(`  - Listen on ${formatAddr(server.addr)}`);
  if (options.web !== undefined) {
    const kind = options.fileOnly ? " (no directory listings)" : "";
    log.info(`  - Web server${kind}. Web root: ${path.resolve(options.web)}`);
  }
  log.info(tls ? "  - SSL/TLS support" : "  - No SSL/TLS support (no cert file)");
  if (options.tls.sslOnly) log.info("  - Deny non-SSL/TLS connections");
  const using = target.kind === "tcp" && target.tls ? " (using SSL)" : "";
  log.info(`  - proxying from ${formatAddr(server.addr)} to ${formatTarget(target)}${using}`);
  if (options.traffic) {
    process.stdout.write("Traffic Legend:\n    } - Client receive\n    { - Target receive\n");
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`Got ${signal}, closing ${server.sessions} session(s)`);
    server.close().then(() => process.exit(0));
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main(process.argv.slice(2)).catch((error) => fail(describeError(error), 1));
