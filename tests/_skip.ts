/**
 * Every skip in the suite goes through here, so that none disappears from the
 * counts: runners count a skipped suite as nothing (Node, Bun) or as one test
 * (Deno). A skipped suite still registers each of its tests, each skipped with
 * the suite's reason, and its hooks do not run. Each skip is appended as one
 * JSON line to the file named by `TEST_SKIP_LOG` (set per runtime by
 * `scripts/test_all.mjs`, which lists and counts them).
 *
 * Two kinds of skip: a capability skip (this runtime or platform cannot or
 * need not run the test) is allowed anywhere; a missing-peer skip (a program
 * or system feature the test needs is absent) fails the test when `CI=true`,
 * because `.ci/run` installs every peer and CI must prove those suites ran.
 *
 * Files that skip import `describe`, `test` and the hooks from here instead
 * of `node:test`. A suite's timeout is also each of its tests' default here:
 * Bun ignores suite timeouts and gives each test 5 s.
 *
 * @module
 */
import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import * as nodeTest from "node:test";

/** Why a test does not run. */
export interface Skip {
  readonly reason: string;
  /** What is missing, for a missing-peer skip; absent for a capability skip. */
  readonly peer?: string;
}

/** A skip, or `false` to run. */
export type SkipIf = Skip | false;

/** This runtime or platform cannot or need not run the test; allowed under CI. */
export function capability(reason: string): Skip {
  return { reason };
}

/** `peer` is absent (`hint` says how to get it); a failure under CI. */
export function missing(peer: string, hint: string): Skip {
  return { reason: `needs ${peer} (${hint})`, peer };
}

/** `false` when `present`, else a missing-peer skip. */
export function needs(peer: string, present: boolean, hint: string): SkipIf {
  return present ? false : missing(peer, hint);
}

/** Whether `host` can be bound here (checks an address family once). */
function canBind(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

/** The IPv6 loopback address: a peer, since `.ci/run` makes sure it exists. */
export const NO_IPV6: SkipIf = needs(
  "the IPv6 loopback address ::1",
  await canBind("::1"),
  "sysctl net.ipv6.conf.lo.disable_ipv6=0",
);

const CI = process.env.CI === "true";

/** Names of the suites whose body is running, the skip of the outermost skipped one, and the
 * innermost timeout. */
let names: readonly string[] = [];
let suiteSkip: SkipIf = false;
let suiteTimeout: number | undefined;

type Options = Omit<nodeTest.TestOptions, "skip" | "todo"> & { skip?: SkipIf };

function record(name: string, skip: Skip): void {
  const log = process.env.TEST_SKIP_LOG;
  if (!log) return;
  // The test file, from the stack of the describe() or test() call.
  const file = /[\w.-]+_test\.ts/.exec(new Error().stack ?? "")?.[0] ?? null;
  const line = JSON.stringify({ file, name, reason: skip.reason, peer: skip.peer ?? null });
  // One short append per line: lines from parallel test processes do not interleave.
  fs.appendFileSync(log, line + "\n");
}

/** `node:test`'s `test`, with a recorded skip (own or the suite's). */
export function test(name: string, options: Options, fn: nodeTest.TestFn): void;
export function test(name: string, fn: nodeTest.TestFn): void;
export function test(
  name: string,
  optionsOrFn: Options | nodeTest.TestFn,
  maybeFn?: nodeTest.TestFn,
): void {
  const [{ skip: own = false, ...options }, fn] = typeof optionsOrFn === "function"
    ? [{}, optionsOrFn]
    : [optionsOrFn, maybeFn!];
  const skip = suiteSkip || own;
  options.timeout ??= suiteTimeout;
  if (!skip) {
    nodeTest.test(name, options, fn);
  } else if (skip.peer && CI) {
    nodeTest.test(name, options, () => {
      throw new Error(`CI=true but this test ${skip.reason}; CI must run it, not skip it`);
    });
  } else {
    record([...names, name].join(" > "), skip);
    nodeTest.test(name, { ...options, skip: skip.reason }, fn);
  }
}

/** `node:test`'s `describe`; when skipped, each test inside is skipped and recorded. */
export function describe(name: string, options: Options, fn: () => void): void;
export function describe(name: string, fn: () => void): void;
export function describe(
  name: string,
  optionsOrFn: Options | (() => void),
  maybeFn?: () => void,
): void {
  const [{ skip = false, ...options }, fn] = typeof optionsOrFn === "function"
    ? [{}, optionsOrFn]
    : [optionsOrFn, maybeFn!];
  // Runners call the body at load (Node, Bun) or when the suite runs (Deno): the context
  // is taken now and set around the body, which registers its tests synchronously.
  const inner = {
    names: [...names, name],
    skip: suiteSkip || skip,
    timeout: options.timeout ?? suiteTimeout,
  };
  nodeTest.describe(name, options, () => {
    const outer = { names, skip: suiteSkip, timeout: suiteTimeout };
    ({ names, skip: suiteSkip, timeout: suiteTimeout } = inner);
    try {
      fn();
    } finally {
      ({ names, skip: suiteSkip, timeout: suiteTimeout } = outer);
    }
  });
}

type Hook = (fn: nodeTest.HookFn, options?: nodeTest.HookOptions) => void;
/** A hook that is not registered inside a skipped suite. */
const hook = (register: Hook): Hook => (fn, options) => {
  if (!suiteSkip) register(fn, options);
};
export const before: Hook = hook(nodeTest.before);
export const after: Hook = hook(nodeTest.after);
export const beforeEach: Hook = hook(nodeTest.beforeEach);
export const afterEach: Hook = hook(nodeTest.afterEach);
