/**
 * TLS for the listener: loads the certificate, key and client CA once at
 * start-up (so a bad path or password fails early with one line), again
 * whenever the files change, as upstream re-reads them per handshake, and
 * on demand (SIGHUP), reporting a failure.
 *
 * @module
 */
import crypto from "node:crypto";
import fs from "node:fs";
import tls from "node:tls";
import { RUNTIME } from "../runtime.ts";
import { TLS_RELOAD_CHECK_MS } from "../../lib/limits.ts";
import { errorText, TlsConfigError } from "../../lib/errors.ts";

/** Server TLS settings, file paths as given on the command line. */
export interface TlsOptions {
  /** PEM certificate chain; may hold the key too (`self.pem`). */
  readonly cert: string;
  /** PEM key, when not in `cert`. */
  readonly key?: string;
  /** Password of an encrypted key. */
  readonly passphrase?: string;
  /** Lowest protocol version accepted. */
  readonly minVersion?: tls.SecureVersion;
  /**
   * OpenSSL cipher list for TLS 1.2 and older (TLS 1.3 suites are not
   * affected, as with upstream's `set_ciphers`). Not supported on Deno.
   */
  readonly ciphers?: string;
  /**
   * Require a client certificate signed by `ca` (`--verify-client`); implies
   * refusing plain connections.
   */
  readonly verifyClient?: boolean;
  /** PEM CA bundle for client certificates; the system CAs when absent. */
  readonly ca?: string;
}

function read(path: string, what: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (error) {
    const code = (error as { code?: string }).code ?? "unreadable";
    throw new TlsConfigError(`Cannot read ${what} "${path}": ${code}`);
  }
}

/** Reads the files and builds server options; throws {@link TlsConfigError}. */
export function loadTlsOptions(options: TlsOptions): tls.TlsOptions {
  const cert = read(options.cert, "certificate");
  const key = options.key ? read(options.key, "key") : cert;
  const secure: tls.TlsOptions = {
    cert,
    key,
    passphrase: options.passphrase,
    minVersion: options.minVersion,
    ciphers: options.ciphers,
    requestCert: options.verifyClient ?? false,
    // The listener refuses an unverified client itself (clientCertRefusal), to log why.
    rejectUnauthorized: false,
    ca: options.verifyClient && options.ca ? read(options.ca, "CA file") : undefined,
  };
  checkCiphers(options.ciphers);
  checkKeyPair(options, cert, key);
  try {
    tls.createSecureContext(secure);
  } catch (error) {
    throw new TlsConfigError(`Cannot use certificate "${options.cert}": ${errorText(error)}`);
  }
  return secure;
}

/**
 * A cipher list matching nothing fails here, not as a certificate problem.
 * Deno's TLS (rustls) ignores the list, so it is refused there.
 */
function checkCiphers(ciphers: string | undefined): void {
  if (ciphers === undefined) return;
  if (RUNTIME === "deno") {
    throw new TlsConfigError("A cipher list (--ssl-ciphers) is not supported on Deno");
  }
  try {
    tls.createSecureContext({ ciphers });
  } catch (error) {
    throw new TlsConfigError(`Cannot use cipher list "${ciphers}": ${tlsErrorText(error)}`);
  }
}

/**
 * One line for a TLS error: OpenSSL's reason ("no shared cipher") where the
 * message is an OpenSSL error string (Node's ends in a newline, Bun's is in
 * upper case), else the message's first line.
 */
export function tlsErrorText(error: unknown): string {
  const text = errorText(error).trim();
  const reason = /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+)/.exec(text)?.[1];
  return reason ? reason.replaceAll("_", " ").toLowerCase() : text;
}

/**
 * Why a client certificate is refused under `verifyClient`, or undefined
 * when it is verified. Deno's verifier (webpki) accepts X.509 v3 only and
 * reports a v1 certificate as a bad signature: that is said plainly.
 */
export function clientCertRefusal(sock: tls.TLSSocket): string | undefined {
  if (sock.authorized) return undefined;
  const peer = sock.getPeerCertificate();
  if (!peer?.raw) return "no client certificate";
  const why = String(sock.authorizationError ?? "not verified");
  const v1 = RUNTIME === "deno" && isX509v1(peer.raw)
    ? ", an X.509 v1 certificate, which Deno does not accept"
    : "";
  return `client certificate refused: ${why}${v1}`;
}

/** A v1 certificate's TBSCertificate has no explicit [0] version field. */
function isX509v1(der: Uint8Array): boolean {
  // SEQUENCE { SEQUENCE (tbs) { [0] version? ...
  let i = 0;
  const skipHeader = () => {
    const len = der[i + 1]!;
    i += 2 + (len & 0x80 ? len & 0x7f : 0);
  };
  skipHeader(); // Certificate
  skipHeader(); // TBSCertificate
  return der[i] !== 0xa0;
}

const KEY_PEM = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/;

/**
 * Decrypts the key and matches it to the certificate now, so that a wrong
 * password or a mismatched pair fails at start-up on every runtime (Deno's
 * `createSecureContext` defers both to the first handshake).
 */
function checkKeyPair(options: TlsOptions, cert: Buffer, key: Buffer): void {
  const keyFile = options.key ?? options.cert;
  const pem = KEY_PEM.exec(key.toString("latin1"))?.[0];
  if (!pem) throw new TlsConfigError(`Cannot find a private key in "${keyFile}"`);
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey({ key: pem, passphrase: options.passphrase });
  } catch (error) {
    const why = /decrypt|passphrase|interrupted/i.test(errorText(error))
      ? "wrong or missing password"
      : errorText(error);
    throw new TlsConfigError(`Cannot use key "${keyFile}": ${why}`);
  }
  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert);
  } catch (error) {
    throw new TlsConfigError(`Cannot use certificate "${options.cert}": ${errorText(error)}`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(`Cannot use certificate "${options.cert}": it does not match the key`);
  }
}

/** The TLS server and how to load its files again. */
export interface TlsServer {
  readonly server: tls.Server;
  /**
   * Reads and checks the files now (throws {@link TlsConfigError}) and
   * returns what puts them in use for new connections; TLS sessions already
   * open keep theirs.
   */
  prepareReload(): () => void;
}

/**
 * Creates the TLS server that sniffed connections are handed to. It is
 * never listened on: sockets arrive through `emit("connection")`, the one
 * way that refuses a wrong-CA client certificate on every runtime
 * (`docs/runtimes.md`, "Client certificates: a TLS server, not a bare
 * TLSSocket").
 */
export function createTlsServer(options: TlsOptions): TlsServer {
  const server = tls.createServer(loadTlsOptions(options));
  let stamp = mtimes(options);
  let checked = Date.now();
  const prepareReload = () => {
    // Taken before reading: an edit during the read is seen by the next check.
    const now = mtimes(options);
    const secure = loadTlsOptions(options);
    return () => {
      server.setSecureContext(secure);
      stamp = now;
    };
  };
  // Pick up renewed certificates without a restart, checking now and then.
  server.prependListener("connection", () => {
    if (Date.now() - checked < TLS_RELOAD_CHECK_MS) return;
    checked = Date.now();
    if (mtimes(options) === stamp) return;
    try {
      prepareReload()();
    } catch {
      // Keep serving with the old certificate until the new files are whole.
    }
  });
  return { server, prepareReload };
}

function mtimes(options: TlsOptions): string {
  return [options.cert, options.key, options.ca].map((p) => {
    try {
      return p ? fs.statSync(p).mtimeMs : 0;
    } catch {
      return -1;
    }
  }).join();
}
