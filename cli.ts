#!/usr/bin/env node
/**
 * The `websockify` command on this process: `adapters/cli/run.ts` does the
 * work. `--workers` and `-D` run this file again (`selfCommand()` in
 * `adapters/process/daemon.ts` names the main module).
 *
 * @module
 */
import process from "node:process";
import { processHost, runCli } from "./adapters/cli/run.ts";
import { keepFreedHeap } from "./adapters/process/malloc.ts";

// Before the first socket read: it sets how glibc keeps freed heap.
keepFreedHeap();
// No top-level await: a module that imports this one (bench/_heap_entry.ts) goes on.
runCli(process.argv.slice(2), processHost()).then((code) => process.exitCode = code);
