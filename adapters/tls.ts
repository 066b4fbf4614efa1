/**
 * TLS for the listener: loads the certificate, key and client CA once at
 * start-up (so a bad path or password fails early with one line) and again
 * whenever the files change, as upstream re-reads them per handshake.
 *
 * @module
 */
import crypto from "node:crypto";
import fs from "node:fs";
import tls from "node:tls";
import { ConfigError, errorText } from "../lib/errors.ts";

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
  /** OpenSSL cipher list. */
  readonly ciphers?: string;
  /** Require a client certificate signed by `ca` (`--verify-client`). */
  readonly verifyClient?: boolean;
  /** PEM CA bundle for client certificates; the system CAs when absent. */
  readonly ca?: string;
}

/** A TLS setting that cannot be used; the message names the file. */
export class TlsConfigError extends ConfigError {
  /** The class name, for logs. */
  override name = "TlsConfigError";
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
    rejectUnauthorized: options.verifyClient ?? false,
    ca: options.verifyClient && options.ca ? read(options.ca, "CA file") : undefined,
  };
  checkKeyPair(options, cert, key);
  try {
    tls.createSecureContext(secure);
  } catch (error) {
    throw new TlsConfigError(`Cannot use certificate "${options.cert}": ${errorText(error)}`);
  }
  return secure;
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

/**
 * Creates the TLS server that sniffed connections are handed to. It is
 * never listened on: sockets arrive through `emit("connection")`, the one
 * way that refuses a wrong-CA client certificate on every runtime
 * (runtimes.md T15).
 */
export function createTlsServer(options: TlsOptions): tls.Server {
  const server = tls.createServer(loadTlsOptions(options));
  let stamp = mtimes(options);
  let checked = Date.now();
  // Pick up renewed certificates without a restart, checking at most once a second.
  server.prependListener("connection", () => {
    if (Date.now() - checked < 1000) return;
    checked = Date.now();
    const now = mtimes(options);
    if (now === stamp) return;
    try {
      server.setSecureContext(loadTlsOptions(options));
      stamp = now;
    } catch {
      // Keep serving with the old certificate until the new files are whole.
    }
  });
  return server;
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
