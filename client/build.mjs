#!/usr/bin/env node
/**
 * Builds the browser demo: `tsc -p tsconfig.client.json` (ES modules), then
 * copies the page and its stylesheet next to the JS. The output directory is
 * `web/` unless given: `node client/build.mjs [OUT_DIR]`. `npm run build`
 * (and so `npm pack`) builds `web/`, which the npm package ships.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const out = resolve(process.argv[2] ?? join(ROOT, "web"));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

// web/ is ours: start it afresh, so no stale file ends up in the package.
if (process.argv[2] === undefined) rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.client.json"), "--outDir", out], {
  stdio: "inherit",
});
for (const file of ["wstelnet.html", "wstelnet.css"]) {
  copyFileSync(join(ROOT, "client", file), join(out, file));
}
