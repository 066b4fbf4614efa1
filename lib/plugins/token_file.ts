/**
 * The token file format of upstream's `TokenFile` (as v0.13.0): one
 * `token: host:port` per line, `#` comments, blank lines, duplicates resolved
 * by the last line. Pure: `adapters/stores/token_file.ts` reads the files.
 *
 * @module
 */
import { parseHostPort } from "./token_target.ts";
import type { Target } from "../types.ts";

/**
 * Parses the texts of a token source into a token → target map. Line numbers
 * in errors count every line, cumulatively across `texts` (the files of a
 * directory, in order), as upstream does; `source` names the whole source.
 * Throws {@link SyntaxError} `Syntax error in SOURCE on line N`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTokenFiles } from "./token_file.ts";
 *
 * const targets = parseTokenFiles(["# VMs\nvm1: 10.0.0.5:5900\nvm2: [::1]:5901\n"], "tokens.cfg");
 * assert.deepEqual(targets.get("vm2"), { kind: "tcp", hostname: "::1", port: 5901 });
 * assert.throws(
 *   () => parseTokenFiles(["vm1:10.0.0.5:5900"], "tokens.cfg"),
 *   /Syntax error in tokens.cfg on line 1/,
 * );
 * ```
 */
export function parseTokenFiles(texts: readonly string[], source: string): Map<string, Target> {
  const targets = new Map<string, Target>();
  let lineNo = 0;
  for (const text of texts) {
    // Python's readlines(): universal newlines, no empty line after the last "\n".
    const lines = text.split(/\r\n|\r|\n/);
    if (lines.at(-1) === "") lines.pop();
    for (const raw of lines) {
      lineNo++;
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      // Upstream splits on `:\s`: exactly one match, so `tok:host:port` is an error.
      const parts = line.split(/:\s/);
      let target: Target | undefined;
      try {
        if (parts.length === 2) target = parseHostPort(parts[1]!);
      } catch {
        // reported below, with the line number
      }
      if (!target) throw new SyntaxError(`Syntax error in ${source} on line ${lineNo}`);
      targets.set(parts[0]!, target);
    }
  }
  return targets;
}
