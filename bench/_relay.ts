/**
 * The floor for any proxy: a bare `node:net` relay that pipes bytes between
 * the client and the target, with no WebSocket, no logging and no checks.
 * `run.ts` measures it like a proxy (`relay` in the tables), so what a
 * second process and a second loopback hop cost on this machine is known.
 *
 * Run: `node --import tsx bench/_relay.ts 127.0.0.1:0 127.0.0.1:TARGET_PORT`.
 *
 * @module
 */
import net from "node:net";
import { relayAddresses } from "./_relay_args.ts";

const { listen, target } = relayAddresses("_relay.ts");

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const upstream = net.connect({
    host: target.hostname,
    port: target.port,
    allowHalfOpen: true,
    noDelay: true,
  });
  client.pipe(upstream);
  upstream.pipe(client);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
});
server.listen(listen.port, listen.hostname, () => {
  const { address, port } = server.address() as net.AddressInfo;
  console.log(`Listen on ${address}:${port}`);
});
