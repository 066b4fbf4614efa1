import { handshakes } from "./_measure.ts";
const port = Number(process.argv[2]);
const n = Number(process.argv[3] ?? 2000);
const par = Number(process.argv[4] ?? 1);
const r = await handshakes({ kind: "ws", port }, n, par, 60000);
console.log(JSON.stringify(r));
