/**
 * The option table: upstream's option names, each with its help text, and
 * the usage and `--help` texts built from it. Pure.
 *
 * @module
 */
import { HANDSHAKE_TIMEOUT_MS } from "../limits.ts";

/** Where the key password may come from instead of `--key-password`, which `ps` shows. */
export const KEY_PASSWORD_ENV = "WEBSOCKIFY_KEY_PASSWORD";

/** Usage lines, as upstream prints them. */
export const USAGE = `Usage:
    websockify [options] [source_addr:]source_port target_addr:target_port
    websockify [options] --token-plugin=CLASS [source_addr:]source_port
    websockify [options] --unix-target=FILE [source_addr:]source_port
    websockify [options] [source_addr:]source_port -- WRAP_COMMAND_LINE`;

/** One command-line option: its `node:util` parseArgs config plus help. */
export interface OptionSpec {
  readonly type: "boolean" | "string";
  readonly short?: string;
  /** The value's name in the help text (string options). */
  readonly arg?: string;
  readonly help: string;
}

/**
 * Every option, keyed by long name. The parser and `--help` both read this
 * table, so an option cannot exist without help text.
 */
export const OPTIONS = {
  help: { type: "boolean", short: "h", help: "show this help message and exit" },
  verbose: { type: "boolean", short: "v", help: "verbose messages (debug level)" },
  traffic: { type: "boolean", help: "per frame traffic tokens on stdout" },
  "prefer-ipv6": {
    type: "boolean",
    short: "6",
    help: "prefer IPv6 when resolving the listen address",
  },
  "unix-target": {
    type: "string",
    arg: "FILE",
    help: "connect to the unix socket FILE instead of host:port",
  },
  heartbeat: {
    type: "string",
    arg: "N",
    help: "ping the client every N seconds; drop it after two missed pongs",
  },
  "handshake-timeout": {
    type: "string",
    arg: "N",
    help: `drop a client with no handshake or request in N s (default ${
      HANDSHAKE_TIMEOUT_MS / 1000
    }; 0: never)`,
  },
  "max-connections": {
    type: "string",
    arg: "N",
    help: "at most N live sessions; more get 503 (per worker)",
  },
  "max-connections-per-ip": {
    type: "string",
    arg: "N",
    help: "at most N live sessions per client address (IPv6: /64); more get 429",
  },
  "max-connections-per-token": {
    type: "string",
    arg: "N",
    help: "at most N live sessions per token; more get 429",
  },
  "rate-limit": {
    type: "string",
    arg: "N",
    help: "at most N new sessions per client address per minute; more get 429",
  },
  "max-session-duration": {
    type: "string",
    arg: "N",
    help: "close sessions N seconds old (code 1008)",
  },
  "session-idle-timeout": {
    type: "string",
    arg: "N",
    help: "close sessions with no data either way for N seconds (code 1000)",
  },
  "allow-client": {
    type: "string",
    arg: "CIDRS",
    help: "only clients in these comma-separated CIDR blocks; others get 403",
  },
  web: {
    type: "string",
    arg: "DIR",
    help: "serve DIR on the same port (hides dotfiles and key files)",
  },
  "web-auth": { type: "boolean", help: "apply --auth-plugin to --web requests too" },
  "file-only": { type: "boolean", help: "with --web: no directory listings" },
  cert: {
    type: "string",
    arg: "CERT",
    help: "TLS certificate (PEM, may hold the key); default self.pem if present",
  },
  key: {
    type: "string",
    arg: "KEY",
    help: "TLS key file, if not in CERT; CERT and KEY are reloaded on SIGHUP",
  },
  "key-password": {
    type: "string",
    arg: "PASS",
    help: `password of KEY (or set ${KEY_PASSWORD_ENV})`,
  },
  "ssl-only": { type: "boolean", help: "refuse connections that do not use TLS" },
  "ssl-version": {
    type: "string",
    arg: "VERSION",
    help: "lowest TLS version: tlsv1_1, tlsv1_2 or tlsv1_3",
  },
  "ssl-ciphers": {
    type: "string",
    arg: "LIST",
    help: "allowed ciphers for TLS 1.2 and older (OpenSSL syntax); not on Deno",
  },
  "verify-client": {
    type: "boolean",
    help: "require a client certificate signed by --cafile; implies --ssl-only",
  },
  cafile: {
    type: "string",
    arg: "FILE",
    help: "CA bundle for --verify-client (reloaded on SIGHUP)",
  },
  "ssl-target": {
    type: "boolean",
    help: "connect to the target with TLS, verifying its certificate and name",
  },
  "ssl-target-cafile": {
    type: "string",
    arg: "FILE",
    help: "also trust this CA for --ssl-target (self-signed targets)",
  },
  "token-plugin": {
    type: "string",
    arg: "NAME",
    help: "choose targets by token: a built-in plugin name or a module path",
  },
  "token-source": { type: "string", arg: "ARG", help: "argument for --token-plugin" },
  "target-config": {
    type: "string",
    arg: "FILE",
    help: "same as --token-plugin=TokenFile --token-source=FILE (deprecated)",
  },
  "token-from": {
    type: "string",
    arg: "LIST",
    help: "where the token is, in order: query, path, cookie:N, header:N, host",
  },
  "allow-target": {
    type: "string",
    arg: "RULES",
    help: "token targets allowed: [*.]NAME, IP, CIDR [:PORT[-PORT]], unix:/DIR/",
  },
  "host-token": {
    type: "boolean",
    help: "take the token from the Host header (--token-from=host)",
  },
  "trusted-proxy": {
    type: "string",
    arg: "CIDRS",
    help: "take the client address from Forwarded/X-Forwarded-For of these peers",
  },
  "proxy-protocol": {
    type: "boolean",
    help: "clients come through a load balancer sending a PROXY header (v1/v2)",
  },
  "target-proxy-protocol": {
    type: "boolean",
    help: "send the target a PROXY v2 header with the client's address first",
  },
  "auth-plugin": {
    type: "string",
    arg: "NAME",
    help: "check requests: a built-in plugin name or a module path",
  },
  "auth-source": { type: "string", arg: "ARG", help: "argument for --auth-plugin" },
  "wrap-mode": {
    type: "string",
    arg: "MODE",
    help: "when the wrapped program exits: exit (default), ignore, respawn",
  },
  record: { type: "string", arg: "FILE", help: "record each session to FILE.N (noVNC playback)" },
  daemon: { type: "boolean", short: "D", help: "become a daemon (background process)" },
  "pid-file": { type: "string", arg: "FILE", help: "write the process id to FILE" },
  "run-once": { type: "boolean", help: "handle a single WebSocket connection and exit" },
  timeout: {
    type: "string",
    arg: "N",
    help: "stop accepting N seconds after start; exit when sessions end",
  },
  "idle-timeout": {
    type: "string",
    arg: "N",
    help: "exit after N seconds without any connection",
  },
  "drain-timeout": {
    type: "string",
    arg: "SECONDS",
    help: "on SIGTERM stop accepting; let sessions end within SECONDS (default 0)",
  },
  "log-file": { type: "string", arg: "FILE", help: "also log to FILE (reopened on SIGHUP)" },
  "log-format": {
    type: "string",
    arg: "FORMAT",
    help: "log lines as text (default) or json (one object per line)",
  },
  syslog: {
    type: "string",
    arg: "SERVER",
    help: "also log to syslog: a socket path (/dev/log) or UDP host:port",
  },
  "legacy-syslog": { type: "boolean", help: "with --syslog: RFC 3164 instead of RFC 5424" },
  inetd: { type: "boolean", help: "take the listening socket from file descriptor 0" },
  "unix-listen": { type: "string", arg: "FILE", help: "listen on the unix socket FILE" },
  "unix-listen-mode": {
    type: "string",
    arg: "MODE",
    help: "octal permissions of --unix-listen (default 0600)",
  },
  libserver: { type: "boolean", help: "accepted for compatibility; has no effect" },
  workers: {
    type: "string",
    arg: "N",
    help: "serve the port from N processes (default 1), to use more cores",
  },
  metrics: {
    type: "string",
    arg: "[ADDR:]PORT",
    help: "serve /metrics, /healthz, /readyz on PORT (ADDR default 127.0.0.1)",
  },
} as const satisfies Record<string, OptionSpec>;

/** `--ssl-version` values and the protocol versions they mean. */
export const SSL_VERSIONS: Record<string, "TLSv1.1" | "TLSv1.2" | "TLSv1.3" | undefined> = {
  default: undefined,
  "tlsv1_1": "TLSv1.1",
  "tlsv1_2": "TLSv1.2",
  "tlsv1_3": "TLSv1.3",
};

function flagText(name: string, spec: OptionSpec): string {
  const long = spec.arg ? `--${name}=${spec.arg}` : `--${name}`;
  return spec.short ? `-${spec.short}, ${long}` : long;
}

/** The full `--help` text. */
export const HELP: string = `${USAGE}

Options:
${
  Object.entries(OPTIONS as Record<string, OptionSpec>)
    .map(([name, spec]) => `  ${flagText(name, spec).padEnd(27)} ${spec.help}`)
    .join("\n")
}`;
