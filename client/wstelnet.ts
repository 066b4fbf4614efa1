/// <reference lib="dom" />
/**
 * The telnet demo page (`wstelnet.html`), like upstream's: connects through
 * websockify, shows what the service sends in a small ANSI line terminal,
 * and sends each typed line with CR LF. By default it connects to the proxy
 * that served the page (same host and port, ws:// or wss:// after the page's
 * own scheme); the fields override that.
 *
 * @module
 */
import { AnsiScreen, type Run } from "./ansi.ts";
import { readTelnet } from "./telnet.ts";
import { Websock } from "./websock.ts";

/** Lines kept in the output area; older ones are dropped. */
const SCROLLBACK = 2000;

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

const connectForm = $<HTMLFormElement>("connect");
const host = $<HTMLInputElement>("host");
const port = $<HTMLInputElement>("port");
const path = $<HTMLInputElement>("path");
const encoding = $<HTMLSelectElement>("encoding");
const button = $<HTMLButtonElement>("connectButton");
const status = $("status");
const output = $("output");
const inputForm = $<HTMLFormElement>("input");
const line = $<HTMLInputElement>("line");
const echo = $<HTMLInputElement>("echo");

host.value = location.hostname;
port.value = location.port || (location.protocol === "https:" ? "443" : "80");

/** Renders runs into a line element. */
function renderLine(el: HTMLElement, runs: Run[]): HTMLElement {
  el.replaceChildren(...runs.map((r) => {
    const span = document.createElement("span");
    span.textContent = r.text;
    if (r.cls) span.className = r.cls;
    return span;
  }));
  return el;
}

const newLine = () => Object.assign(document.createElement("div"), { className: "line" });
const current = newLine();
output.append(current);

function addLine(el: HTMLElement): void {
  output.insertBefore(el, current);
  while (output.childElementCount > SCROLLBACK) output.firstElementChild?.remove();
}

const screen = new AnsiScreen({
  line: (runs) => addLine(renderLine(newLine(), runs)),
  clear: () => output.replaceChildren(current),
});

function show(): void {
  renderLine(current, screen.current());
  output.scrollTop = output.scrollHeight;
}

/** A line of the page's own, below what the service sent so far. */
function note(text: string): void {
  screen.endLine();
  addLine(renderLine(newLine(), [{ text, cls: "note" }]));
  show();
}

function setStatus(text: string, connected: boolean): void {
  status.textContent = text;
  status.className = connected ? "connected" : "";
  button.textContent = connected ? "Disconnect" : "Connect";
  line.disabled = !connected;
}

const ws = new Websock();
let decoder = new TextDecoder();
let url = "";

ws.on("open", () => {
  setStatus(`Connected to ${url} (${ws.protocol || "no subprotocol"})`, true);
  line.focus();
});
ws.on("message", () => {
  screen.write(decoder.decode(readTelnet(ws), { stream: true }));
  show();
});
ws.on("close", ({ code, reason }) => {
  setStatus(`Disconnected: ${code}${reason ? ` ${reason}` : ""}`, false);
  note(`[closed ${code}${reason ? `: ${reason}` : ""}]`);
});
ws.on("error", (error) => console.warn("websock error", error));

/** The WebSocket URL from the fields; scheme after the page's. */
function wsUrl(): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const h = host.value.trim() || location.hostname;
  const hostPart = h.includes(":") && !h.startsWith("[") ? `[${h}]` : h;
  const p = path.value.trim().replace(/^\/?/, "/");
  return `${scheme}://${hostPart}${port.value.trim() ? `:${port.value.trim()}` : ""}${p}`;
}

connectForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (ws.isOpen) {
    ws.close();
    return;
  }
  url = wsUrl();
  decoder = new TextDecoder();
  setStatus(`Connecting to ${url} ...`, false);
  ws.open(url, [encoding.value]);
});

inputForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!ws.isOpen) return;
  ws.sendString(`${line.value}\r\n`);
  if (echo.checked) {
    // Dim, after the service's prompt like a terminal; control characters dropped.
    // deno-lint-ignore no-control-regex
    screen.write(`\x1b[2m${line.value.replace(/[\x00-\x1f\x7f]/g, "")}\x1b[22m\r\n`);
    show();
  }
  line.value = "";
});
