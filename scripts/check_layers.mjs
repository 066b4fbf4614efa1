#!/usr/bin/env node
/**
 * Checks the layering that README.md describes, one line per violation on
 * stderr, exit 1 if there is any:
 * - a file in lib/ imports only lib/ files and `hono` (and `node:util`, for
 *   parseArgs, in lib/cli/args.ts alone);
 * - lib/ code does not name `Deno`, `Bun`, `process` or `Buffer` (comments and
 *   strings do not count; a property such as `x.process` does not either);
 * - a file in adapters/ does not import mod.ts or cli.ts (nor the package by
 *   name, which is mod.ts).
 *
 * Usage: node scripts/check_layers.mjs [ROOT]   (default: this repository)
 * Plain JavaScript with node: built-ins only, so it runs under Node, Deno and
 * Bun alike; it reads the code with a small tokenizer, not a regex over text,
 * so that comments, strings and template text are skipped.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Packages lib/ may import, besides its own files. */
const LIB_PACKAGES = ["hono"];
/** Named exceptions: one lib/ file may import one more module. */
const LIB_EXCEPTIONS = { "lib/cli/args.ts": ["node:util"] };
/** Globals that tie code to a runtime. */
const RUNTIME_GLOBALS = new Set(["Deno", "Bun", "process", "Buffer"]);
/** The package's own name: importing it means importing mod.ts. */
const PACKAGE_NAME = "@websockify/websockify";
const SOURCE = /\.(?:[cm]?[jt]s|tsx|jsx)$/;

/** Keywords after which a `/` starts a regular expression, not a division. */
const BEFORE_REGEX = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

/**
 * The code tokens of `src`: identifiers, strings (with their value), numbers
 * and punctuation, each with its line. Comments, whitespace and the text of
 * template literals are dropped; `${...}` inside templates is code.
 */
function tokenize(src) {
  const tokens = [];
  /** Brace depths at which an open template literal resumes. */
  const templates = [];
  let depth = 0;
  let line = 1;
  let i = 0;
  const n = src.length;
  const push = (type, value) => tokens.push({ type, value, line });
  const regexAllowed = () => {
    const prev = tokens[tokens.length - 1];
    if (!prev) return true;
    if (prev.type === "id") return BEFORE_REGEX.has(prev.value);
    if (prev.type === "str" || prev.type === "num" || prev.type === "tmpl") return false;
    return !")]}".includes(prev.value);
  };
  /** Skips template text from `i` up to the closing backtick or a `${`. */
  const templateText = () => {
    while (i < n) {
      const c = src[i];
      if (c === "\\") i += 2;
      else if (c === "`") {
        i++;
        push("tmpl", "");
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        templates.push(depth);
        depth++;
        return;
      } else {
        if (c === "\n") line++;
        i++;
      }
    }
  };
  while (i < n) {
    const c = src[i];
    if (c === "\n") {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let j = i; j < stop; j++) if (src[j] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      let value = "";
      i++;
      while (i < n && src[i] !== c && src[i] !== "\n") {
        if (src[i] === "\\") {
          value += src[i + 1] ?? "";
          i += 2;
        } else value += src[i++];
      }
      i++;
      push("str", value);
    } else if (c === "`") {
      i++;
      templateText();
    } else if (c === "/" && regexAllowed()) {
      let inClass = false;
      i++;
      while (i < n && src[i] !== "\n") {
        const d = src[i];
        if (d === "\\") i++;
        else if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        i++;
      }
      i++;
      while (i < n && /[a-z]/i.test(src[i])) i++;
      push("regex", "");
    } else if (/[\p{ID_Start}$_]/u.test(c)) {
      let j = i + 1;
      while (j < n && /[\p{ID_Continue}$\u200c\u200d]/u.test(src[j])) j++;
      push("id", src.slice(i, j));
      i = j;
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(src[j])) j++;
      push("num", src.slice(i, j));
      i = j;
    } else if (c === "}" && templates.length && templates[templates.length - 1] === depth - 1) {
      templates.pop();
      depth--;
      i++;
      templateText();
    } else {
      if (c === "{") depth++;
      else if (c === "}") depth--;
      push("punct", c);
      i++;
    }
  }
  return tokens;
}

/**
 * The module specifiers `tokens` import: `import ... from "x"`, `export ...
 * from "x"`, `import "x"`, `import("x")`, `require("x")`; `null` for a dynamic
 * import whose specifier is computed.
 */
function imports(tokens) {
  const found = [];
  const is = (k, type, value) =>
    tokens[k] && tokens[k].type === type && (value === undefined || tokens[k].value === value);
  const member = (k) => is(k - 1, "punct", ".");
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.type === "str") {
      if ((is(k - 1, "id", "from") || is(k - 1, "id", "import")) && !member(k - 1)) {
        found.push({ spec: t.value, line: t.line });
      } else if (
        is(k - 1, "punct", "(") && (is(k - 2, "id", "import") || is(k - 2, "id", "require")) &&
        !member(k - 2)
      ) {
        found.push({ spec: t.value, line: t.line });
      }
    } else if (
      is(k, "id", "import") && !member(k) && is(k + 1, "punct", "(") && !is(k + 2, "str")
    ) {
      found.push({ spec: null, line: t.line });
    }
  }
  return found;
}

/** Every source file under `dir`, as absolute paths, sorted. */
function sources(dir) {
  let names;
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return SOURCE.test(name) ? [path] : [];
  });
}

/** A path relative to `root`, with forward slashes. */
function rel(root, path) {
  return relative(root, path).split(sep).join("/");
}

/** The violations in the tree at `root`, one message each, in file order. */
function checkLayers(root) {
  const out = [];
  for (const file of sources(join(root, "lib"))) {
    const name = rel(root, file);
    const tokens = tokenize(readFileSync(file, "utf8"));
    const allowed = [...LIB_PACKAGES, ...(LIB_EXCEPTIONS[name] ?? [])];
    for (const { spec, line } of imports(tokens)) {
      const where = `${name}:${line}`;
      if (spec === null) {
        out.push(`${where}: imports a computed specifier; lib/ imports only lib/ files and hono`);
      } else if (spec.startsWith(".") || spec.startsWith("/")) {
        const target = rel(root, resolve(dirname(file), spec));
        if (!target.startsWith("lib/")) {
          out.push(`${where}: imports "${spec}" (${target}), outside lib/`);
        }
      } else if (!allowed.some((p) => spec === p || spec.startsWith(`${p}/`))) {
        out.push(`${where}: imports "${spec}"; lib/ imports only lib/ files and hono`);
      }
    }
    for (let k = 0; k < tokens.length; k++) {
      const t = tokens[k];
      const prev = tokens[k - 1];
      if (t.type !== "id" || !RUNTIME_GLOBALS.has(t.value)) continue;
      if (prev && prev.type === "punct" && (prev.value === "." || prev.value === "#")) continue;
      out.push(`${name}:${t.line}: uses ${t.value}; lib/ stays runtime-neutral`);
    }
  }
  const entries = new Set(["mod.ts", "cli.ts"]);
  for (const file of sources(join(root, "adapters"))) {
    const name = rel(root, file);
    for (const { spec, line } of imports(tokenize(readFileSync(file, "utf8")))) {
      if (spec === null) continue;
      const target = spec.startsWith(".") || spec.startsWith("/")
        ? rel(root, resolve(dirname(file), spec))
        : spec === PACKAGE_NAME
        ? "mod.ts"
        : "";
      if (entries.has(target)) {
        out.push(`${name}:${line}: imports ${target}; adapters/ must not depend on the entries`);
      }
    }
  }
  return out;
}

/** Checks ROOT (the first argument, else this repository); exits 1 on a violation. */
function main() {
  const root = resolve(process.argv[2] ?? fileURLToPath(new URL("..", import.meta.url)));
  let lib;
  try {
    lib = statSync(join(root, "lib")).isDirectory();
  } catch {
    lib = false;
  }
  if (!lib) {
    console.error(`check_layers: no lib/ directory in ${root}`);
    process.exit(2);
  }
  const violations = checkLayers(root);
  for (const v of violations) console.error(v);
  if (violations.length) {
    console.error(`check_layers: ${violations.length} layer violation(s)`);
    process.exit(1);
  }
  console.log("check_layers: lib/ and adapters/ keep their layers");
}

main();
