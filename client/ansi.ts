/**
 * ANSI basics for a line terminal, without the DOM: CR, LF, backspace, tab,
 * SGR colours and bold/dim/underline/inverse, erase-in-line, clear screen and
 * cursor moves within the line (rows are not tracked). Other escape
 * sequences are dropped. Text becomes lines of styled runs; the page renders
 * them.
 *
 * @module
 */

/** Text that shares one set of CSS classes. */
export interface Run {
  text: string;
  /** Space-separated classes: `f0`..`f15` / `b0`..`b15` colours, `fi`/`bi` inverse defaults, `bold`, `dim`, `ul`. */
  cls: string;
}

/** Where {@link AnsiScreen} reports its output. */
export interface ScreenSink {
  /** A finished line. */
  line(runs: Run[]): void;
  /** Clear screen (`ESC [ 2 J`). */
  clear(): void;
}

// Lines longer than this wrap, so a service that never sends a newline stays bounded.
const MAX_COLS = 2000;
// deno-lint-ignore no-control-regex
const INCOMPLETE = /^\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[()#])?$/;
// deno-lint-ignore no-control-regex
const SEQUENCE = /^\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()#][^]|[^])/;

/**
 * A line-oriented screen fed with decoded text.
 *
 * @example
 * ```ts
 * const lines: Run[][] = [];
 * const screen = new AnsiScreen({ line: (r) => lines.push(r), clear: () => {} });
 * screen.write("\x1b[1;31mred\x1b[0m ok\r\n");
 * // lines[0]: [{ text: "red", cls: "f1 bold" }, { text: " ok", cls: "" }]
 * ```
 */
export class AnsiScreen {
  #chars: string[] = [];
  #classes: string[] = [];
  #col = 0;
  #fg: number | null = null;
  #bg: number | null = null;
  #bold = false;
  #dim = false;
  #ul = false;
  #inverse = false;
  #cls = "";
  #pending = ""; // an escape sequence cut off at the end of the last write

  constructor(readonly sink: ScreenSink) {}

  /** Feeds text; complete lines go to the sink. */
  write(text: string): void {
    text = this.#pending + text;
    this.#pending = "";
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === "\x1b") {
        const rest = text.slice(i, i + 256);
        if (INCOMPLETE.test(rest) && text.length - i < 256) {
          this.#pending = rest;
          return;
        }
        const m = SEQUENCE.exec(rest);
        if (m) {
          if (m[2]) this.#csi(m[2], m[1] ?? "");
          i += m[0].length - 1;
        }
      } else if (ch === "\n") {
        this.#newline();
      } else if (ch === "\r") {
        this.#col = 0;
      } else if (ch === "\b") {
        this.#col = Math.max(0, this.#col - 1);
      } else if (ch === "\t") {
        do this.#put(" "); while (this.#col % 8 !== 0);
      } else if (ch >= " " && ch !== "\x7f") {
        this.#put(ch);
      } // other control characters (bell, ...) are dropped
    }
  }

  /** Finishes the current line, if it has any text. */
  endLine(): void {
    if (this.#chars.length) this.#newline();
    this.#col = 0;
  }

  /** The unfinished line, as runs. */
  current(): Run[] {
    return runs(this.#chars, this.#classes);
  }

  #put(ch: string): void {
    if (this.#col >= MAX_COLS) this.#newline();
    while (this.#chars.length < this.#col) {
      this.#chars.push(" ");
      this.#classes.push("");
    }
    this.#chars[this.#col] = ch;
    this.#classes[this.#col] = this.#cls;
    this.#col++;
  }

  #newline(): void {
    this.sink.line(this.current());
    this.#chars = [];
    this.#classes = [];
    this.#col = 0;
  }

  #csi(final: string, params: string): void {
    const args = params.split(";").map((p) => Number.parseInt(p, 10) || 0);
    const n = Math.max(1, args[0] ?? 1);
    if (final === "m") this.#sgr(args);
    else if (final === "K") this.#eraseLine(args[0] ?? 0);
    else if (final === "J" && args[0] === 2) this.#clearScreen();
    else if (final === "C") this.#col = Math.min(MAX_COLS, this.#col + n);
    else if (final === "D") this.#col = Math.max(0, this.#col - n);
    else if (final === "G") this.#col = Math.min(MAX_COLS, n - 1);
    else if (final === "H" || final === "f") this.#col = Math.min(MAX_COLS, (args[1] || 1) - 1);
  }

  #eraseLine(mode: number): void {
    if (mode === 0) {
      this.#chars.length = Math.min(this.#chars.length, this.#col);
      this.#classes.length = this.#chars.length;
    } else {
      const upTo = mode === 1 ? Math.min(this.#col + 1, this.#chars.length) : this.#chars.length;
      this.#chars.fill(" ", 0, upTo);
      this.#classes.fill("", 0, upTo);
    }
  }

  #clearScreen(): void {
    this.#chars = [];
    this.#classes = [];
    this.sink.clear();
  }

  #sgr(args: number[]): void {
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === 0) {
        this.#fg = this.#bg = null;
        this.#bold =
          this.#dim =
          this.#ul =
          this.#inverse =
            false;
      } else if (a === 1) this.#bold = true;
      else if (a === 2) this.#dim = true;
      else if (a === 22) this.#bold = this.#dim = false;
      else if (a === 4) this.#ul = true;
      else if (a === 24) this.#ul = false;
      else if (a === 7) this.#inverse = true;
      else if (a === 27) this.#inverse = false;
      else if (a >= 30 && a <= 37) this.#fg = a - 30;
      else if (a >= 90 && a <= 97) this.#fg = a - 90 + 8;
      else if (a === 39) this.#fg = null;
      else if (a >= 40 && a <= 47) this.#bg = a - 40;
      else if (a >= 100 && a <= 107) this.#bg = a - 100 + 8;
      else if (a === 49) this.#bg = null;
      else if (a === 38 || a === 48) i += args[i + 1] === 5 ? 2 : 4; // 256/true colour: skipped
    }
    this.#cls = this.#classNames();
  }

  #classNames(): string {
    const [fg, bg] = this.#inverse ? [this.#bg, this.#fg] : [this.#fg, this.#bg];
    const out: string[] = [];
    if (fg !== null) out.push(`f${fg}`);
    else if (this.#inverse) out.push("fi");
    if (bg !== null) out.push(`b${bg}`);
    else if (this.#inverse) out.push("bi");
    if (this.#bold) out.push("bold");
    if (this.#dim) out.push("dim");
    if (this.#ul) out.push("ul");
    return out.join(" ");
  }
}

/** Groups neighbouring cells with the same classes. */
function runs(chars: string[], classes: string[]): Run[] {
  const out: Run[] = [];
  for (let i = 0; i < chars.length; i++) {
    const last = out[out.length - 1];
    if (last && last.cls === classes[i]) last.text += chars[i];
    else out.push({ text: chars[i]!, cls: classes[i] ?? "" });
  }
  return out;
}
