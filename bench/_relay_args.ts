/**
 * The command line both bare relays share: `LISTEN_HOST:PORT TARGET_HOST:PORT`.
 *
 * @module
 */
import process from "node:process";

/** A host and port from the command line. */
export interface HostPort {
  readonly hostname: string;
  readonly port: number;
}

/** The two addresses, or a usage line and exit 2 for `script`. */
export function relayAddresses(script: string): { listen: HostPort; target: HostPort } {
  const [listen, target] = process.argv.slice(2).map((arg) => {
    const at = arg.lastIndexOf(":");
    return { hostname: arg.slice(0, at), port: Number(arg.slice(at + 1)) };
  });
  if (!listen || !target) {
    console.error(`Usage: ${script} LISTEN_HOST:PORT TARGET_HOST:PORT`);
    process.exit(2);
  }
  return { listen, target };
}
