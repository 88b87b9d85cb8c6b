/**
 * Printing text that someone else controls. A device, the relay or the control plane can put any
 * character in a reason, a CLOSE message or an error; printed raw, ESC and C1 introduce terminal
 * sequences (an OSC 52 clipboard write, a CSI cursor move, a forged line after a newline). Every
 * such string is shown through `escapeControl` before it reaches a terminal or a log line.
 *
 * The escape is JSON's `\uXXXX` form (`\x1b` → `\u001b`), one spelling for every escaped code
 * point, so a line reads the same in the human output, in `--json` and in the JSON logs.
 */

/**
 * C0 (newline and tab included: one message is one line), DEL, C1, the line and paragraph
 * separators, and the bidirectional embedding, override and isolate controls (which reorder what
 * a terminal shows, "Trojan Source").
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** The characters `escapeControl` rewrites that JSON.stringify leaves as they are. */
const NOT_ESCAPED_BY_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const uEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** `text` with every control character written as `\uXXXX`; safe to print on a terminal. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, uEscape);
}

/**
 * JSON.stringify, with the control characters it passes through (DEL, C1, separators, bidi
 * controls) also written as `\uXXXX`. Those can only occur inside JSON strings, where the escape
 * means the same character, so the output parses to exactly the same value.
 */
export function safeJson(value: unknown, space?: number): string {
  return (JSON.stringify(value, null, space) ?? "null").replace(NOT_ESCAPED_BY_JSON, uEscape);
}
