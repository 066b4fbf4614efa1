/**
 * Test certificates made with the `openssl` command: a CA, a server
 * certificate for localhost, client certificates from that CA and from an
 * unrelated one, and an encrypted key.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { within } from "./_harness.ts";

/** Paths of the generated files, and a cleanup. */
export interface Certs {
  readonly dir: string;
  readonly ca: string;
  /** Server certificate, SAN localhost and 127.0.0.1. */
  readonly cert: string;
  readonly key: string;
  /** Certificate and key in one file, like `self.pem`. */
  readonly combined: string;
  /** Server certificate for DNS:localhost only (no IP names). */
  readonly nameOnlyCert: string;
  readonly nameOnlyKey: string;
  /** Client certificate CN=alice from `ca`. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** Client certificate CN=bob from `ca` without extensions: X.509 v1. */
  readonly v1ClientCert: string;
  readonly v1ClientKey: string;
  /** Client certificate CN=mallory from an unrelated CA. */
  readonly strangerCert: string;
  readonly strangerKey: string;
  /** `key` encrypted with the password "sesame". */
  readonly encryptedKey: string;
  remove(): void;
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd, stdio: "ignore" });
}

function makeCa(dir: string, name: string): void {
  openssl(
    dir,
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`],
  );
}

/** `ext` is an extension line, or null for none (a v1 certificate). */
function issue(dir: string, ca: string, name: string, cn: string, ext?: string | null): void {
  openssl(
    dir,
    ...["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`],
  );
  const extFile = path.join(dir, `${name}.ext`);
  if (ext !== null) fs.writeFileSync(extFile, ext ?? "basicConstraints=CA:FALSE\n");
  openssl(
    dir,
    ...["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`],
    ...["-CAcreateserial", "-out", `${name}.pem`, "-days", "2"],
    ...(ext === null ? [] : ["-extfile", extFile]),
  );
}

/** Generates every certificate into a new temporary directory. */
export function makeCerts(): Certs {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-certs-"));
  const p = (f: string) => path.join(dir, f);
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  issue(dir, "ca", "server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  issue(dir, "ca", "nameonly", "localhost", "subjectAltName=DNS:localhost\n");
  issue(dir, "ca", "alice", "alice");
  issue(dir, "ca", "bob", "bob", null);
  issue(dir, "other-ca", "mallory", "mallory");
  fs.writeFileSync(
    p("self.pem"),
    fs.readFileSync(p("server.pem")) + "" + fs.readFileSync(p("server.key")),
  );
  openssl(
    dir,
    "pkey",
    "-in",
    "server.key",
    "-aes256",
    "-passout",
    "pass:sesame",
    "-out",
    "enc.key",
  );
  return {
    dir,
    ca: p("ca.pem"),
    cert: p("server.pem"),
    key: p("server.key"),
    combined: p("self.pem"),
    nameOnlyCert: p("nameonly.pem"),
    nameOnlyKey: p("nameonly.key"),
    clientCert: p("alice.pem"),
    clientKey: p("alice.key"),
    v1ClientCert: p("bob.pem"),
    v1ClientKey: p("bob.key"),
    strangerCert: p("mallory.pem"),
    strangerKey: p("mallory.key"),
    encryptedKey: p("enc.key"),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * The SHA-256 fingerprint of the certificate that a new TLS client of
 * 127.0.0.1:`port` (SNI localhost, trusting `ca`) is shown.
 */
export function servedFingerprint(port: number, ca: string): Promise<string> {
  return within(
    10000,
    new Promise((resolve, reject) => {
      const sock = tls.connect({
        port,
        host: "127.0.0.1",
        servername: "localhost",
        ca: fs.readFileSync(ca),
      }, () => {
        resolve(sock.getPeerCertificate().fingerprint256);
        sock.destroy();
      });
      sock.on("error", reject);
    }),
    "TLS handshake",
  );
}
