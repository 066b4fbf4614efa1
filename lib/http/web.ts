/**
 * The `--web` static file server: upstream's rules (index files, listings,
 * 301 for directories without a slash, 304, HEAD) with the file system
 * injected, and no way out of the web root: dot segments, backslashes and
 * NULs are refused and symlinks must resolve inside the root. Dotfiles and
 * the files in `exclude` (the proxy's keys, token files) are never served
 * nor listed.
 *
 * @module
 */
import { contentType } from "./mime.ts";

/** What the web server needs to know about a path. */
export interface FileInfo {
  readonly isFile: boolean;
  readonly isDirectory: boolean;
  readonly size: number;
  readonly mtime: Date;
  /** Device and inode, so that links to an excluded file are recognised. */
  readonly id?: string;
}

/** A directory entry. */
export interface DirEntry {
  readonly name: string;
  readonly isDirectory: boolean;
}

/** The file system, as an adapter provides it. Paths are absolute. */
export interface WebFs {
  /** Follows symlinks; undefined when the path does not exist. */
  stat(path: string): Promise<FileInfo | undefined>;
  /** The path with every symlink resolved. */
  realPath(path: string): Promise<string>;
  /** Entry names of a directory, with a flag for subdirectories. */
  readDir(path: string): Promise<DirEntry[]>;
  /** The file's bytes, whole or as a stream (the adapter chooses by `size`). */
  read(path: string, size: number): Promise<Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>>;
}

/** Options for {@link serveWeb}. */
export interface WebOptions {
  /** The web root: absolute, symlinks resolved. */
  readonly root: string;
  /** No directory listings (`--file-only`). */
  readonly fileOnly?: boolean;
  /** Absolute paths never served, whatever the link or spelling; a directory hides all below it. */
  readonly exclude?: readonly string[];
  readonly fs: WebFs;
}

const INDEX_FILES = ["index.html", "index.htm"];

function notFound(): Response {
  return new Response("File not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** Splits a URL path into safe segments, or undefined if it is not safe. */
function segments(pathname: string): string[] | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  const parts = decoded.split("/").filter((p) => p !== "");
  const unsafe = (p: string) => p.startsWith(".") || p.includes("\\") || p.includes("\0");
  return parts.some(unsafe) ? undefined : parts;
}

/**
 * Answers a GET or HEAD request from the web root.
 *
 * @example
 * ```ts
 * import { serveWeb, type WebFs } from "./web.ts";
 *
 * // adapters/server/web_fs.ts has the WebFs over node:fs.
 * const serve = (req: Request, fs: WebFs) => serveWeb(req, { root: "/srv/www", fs });
 * ```
 */
export async function serveWeb(req: Request, options: WebOptions): Promise<Response> {
  const { root, fs } = options;
  const url = new URL(req.url);
  const parts = segments(url.pathname);
  if (!parts) return notFound();
  let path = [root, ...parts].join("/");
  let info = await fs.stat(path);
  if (!info || !(await allowed(path, info, options))) return notFound();
  if (info.isDirectory) {
    if (!url.pathname.endsWith("/")) {
      // One leading slash only: "//host/" in a Location is protocol-relative,
      // a redirect to another host.
      const location = `/${url.pathname.replace(/^[/\\]+/, "")}/${url.search}`;
      return new Response(null, { status: 301, headers: { location, "content-length": "0" } });
    }
    const index = await findIndex(path, fs);
    if (!index) {
      if (options.fileOnly) return notFound();
      return listing(url.pathname, await visible(path, options), req.method === "HEAD");
    }
    [path, info] = index;
    if (!(await allowed(path, info, options))) return notFound();
  }
  if (!info.isFile) return notFound();
  return await fileResponse(req, path, info, fs);
}

/** Whether `path` may be served: inside the root, no dot name below it, not excluded. */
async function allowed(path: string, info: FileInfo, options: WebOptions): Promise<boolean> {
  const { root, fs } = options;
  const real = await fs.realPath(path);
  const prefix = root.endsWith("/") ? root : `${root}/`;
  if (real !== root && !real.startsWith(prefix)) return false;
  // A link may hide a dot name (`ui.pem -> .key.pem`): check the real path too.
  if (real.slice(prefix.length).split("/").some((p) => p.startsWith("."))) return false;
  for (const excluded of options.exclude ?? []) {
    const ex = await fs.stat(excluded);
    if (!ex) continue;
    // Inodes catch hard links too; without them, the real path must do.
    if (ex.id !== undefined && !ex.isDirectory) {
      if (ex.id === info.id) return false;
      continue;
    }
    const other = await fs.realPath(excluded).catch(() => excluded);
    if (real === other || (ex.isDirectory && real.startsWith(`${other}/`))) return false;
  }
  return true;
}

/** The entries of `dir` that may be served. */
async function visible(dir: string, options: WebOptions): Promise<DirEntry[]> {
  const entries = (await options.fs.readDir(dir)).filter((e) => !e.name.startsWith("."));
  const shown = await Promise.all(entries.map(async (e) => {
    const path = `${dir}/${e.name}`;
    const info = await options.fs.stat(path);
    return info !== undefined && await allowed(path, info, options).catch(() => false);
  }));
  return entries.filter((_, i) => shown[i]);
}

async function findIndex(dir: string, fs: WebFs): Promise<[string, FileInfo] | undefined> {
  for (const name of INDEX_FILES) {
    const path = `${dir}/${name}`;
    const info = await fs.stat(path);
    if (info?.isFile) return [path, info];
  }
  return undefined;
}

async function fileResponse(
  req: Request,
  path: string,
  info: FileInfo,
  fs: WebFs,
): Promise<Response> {
  const modified = new Date(Math.floor(info.mtime.getTime() / 1000) * 1000);
  const since = Date.parse(req.headers.get("if-modified-since") ?? "");
  const headers = { "last-modified": modified.toUTCString() };
  if (!Number.isNaN(since) && modified.getTime() <= since) {
    return new Response(null, { status: 304, headers });
  }
  const body = req.method === "HEAD" ? null : await fs.read(path, info.size);
  return new Response(body, {
    headers: {
      ...headers,
      "content-type": contentType(path),
      "content-length": String(info.size),
    },
  });
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#x27;",
};

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function listing(
  pathname: string,
  entries: DirEntry[],
  head: boolean,
): Response {
  const title = `Directory listing for ${escapeHtml(decodeURIComponent(pathname))}`;
  const items = entries
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(({ name, isDirectory }) => {
      const shown = isDirectory ? `${name}/` : name;
      const href = encodeURIComponent(name) + (isDirectory ? "/" : "");
      return `<li><a href="${escapeHtml(href)}">${escapeHtml(shown)}</a></li>`;
    });
  const html =
    `<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>${title}</title>\n` +
    `</head>\n<body>\n<h1>${title}</h1>\n<hr>\n<ul>\n${items.join("\n")}\n</ul>\n<hr>\n` +
    `</body>\n</html>\n`;
  const bytes = new TextEncoder().encode(html);
  return new Response(head ? null : bytes, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-length": String(bytes.byteLength),
    },
  });
}
