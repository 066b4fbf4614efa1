/**
 * Debian's Chromium for the browser tests: where it is, and the flags a
 * root user on a closed network needs (no background fetches, no QUIC, no
 * GPU). Never a browser download.
 *
 * @module
 */

/** Debian's Chromium (`apt-get install chromium`). */
export const CHROMIUM = "/usr/bin/chromium";

/** Launch flags for a headless Chromium here. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
