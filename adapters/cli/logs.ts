/**
 * Where the command's log lines go: stderr, plus `--log-file` (reopened on
 * SIGHUP, see `reload.ts`) and `--syslog`; with `--workers`, each line names its worker.
 *
 * @module
 */
import type { CliRun } from "../../lib/cli/args.ts";
import { describeError } from "../../lib/errors.ts";
import { createLogger, type Logger, prefixLogger } from "../../lib/log.ts";
import {
  FACILITY_DAEMON,
  FACILITY_USER,
  parseSyslogAddress,
  type SyslogAddress,
} from "../../lib/output/syslog.ts";
import { UsageError } from "../../lib/errors.ts";
import { type LogFile, openLogFile } from "../output/log_file.ts";
import { createSyslogSink } from "../output/syslog.ts";
import { workerIndex } from "../process/workers.ts";
import { type CliHost, fail, usageError } from "./host.ts";

/** The command's logger and what flushes its files and servers. */
export interface CliLogs {
  readonly log: Logger;
  /**
   * Reopens `--log-file` at its path (logrotate renames the file, then sends
   * SIGHUP); true when done, false without a file or with a warning line.
   */
  reopen(): boolean;
  /** Flushes the log file and syslog. */
  close(): Promise<void>;
}

/**
 * Opens the log outputs that `options` asks for; a file that cannot be
 * opened ends the run with one error line and 1, a bad `--syslog` with 2.
 */
export function openLogs(options: CliRun, host: CliHost): CliLogs {
  const { logFile, syslog, legacySyslog, daemon } = options.lifecycle;
  const file = logFile === undefined ? undefined : openLogOrExit(host, logFile);
  const toLocal = (line: string) => {
    host.stderr(`${line}\n`);
    file?.write(line);
  };
  const format = options.logFormat;
  // Syslog's own failures go to stderr and the file only, not to syslog itself.
  const local = createLogger({ write: toLocal, verbose: options.verbose, format });
  const reopen = () => {
    if (!file) return false;
    try {
      file.reopen();
      return true;
    } catch (error) {
      local.warn(`Cannot reopen log file ${file.path}: ${describeError(error)}`);
      return false;
    }
  };
  const sink = syslog === undefined
    ? undefined
    : createSyslogSink(syslogAddressOrExit(host, syslog), {
      legacy: legacySyslog,
      facility: daemon ? FACILITY_DAEMON : FACILITY_USER,
      pid: host.pid,
      onError: (message) => local.warn(message), // not to syslog itself
    });
  // Syslog carries the line without time and level (text) or the JSON object.
  const log = createLogger({
    write: sink
      ? (line, level, body) => {
        toLocal(line);
        sink.send(level, body);
      }
      : toLocal,
    traffic: options.traffic ? (token) => host.stdout(token) : undefined,
    verbose: options.verbose,
    format,
  });
  // Each worker numbers its sessions from 1: "w2 #5" tells them apart.
  const k = workerIndex(options.lifecycle.workers);
  return {
    log: k > 0 ? prefixLogger(log, `w${k}`) : log,
    reopen,
    async close() {
      await sink?.close();
      file?.close();
    },
  };
}

/** Opens `--log-file`, or ends the run with one error line and 1. */
function openLogOrExit(host: CliHost, file: string): LogFile {
  try {
    return openLogFile(file);
  } catch (error) {
    return fail(host, `Cannot open log file ${file}: ${describeError(error)}`, 1);
  }
}

/** A bad `--syslog` port is a usage error, as upstream's `parser.error`. */
function syslogAddressOrExit(host: CliHost, text: string): SyslogAddress {
  try {
    return parseSyslogAddress(text);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return usageError(host, error.message);
  }
}
