/**
 * Structured logging: one JSON object per line, so App Insights and `jq` read the same thing.
 * Callers pass fields, never whole requests, which is what keeps tokens out of the logs; the
 * redaction below is a second line of defence for field names that must never be printed.
 * Messages and fields carry strings a device or a caller chose: every control character in a
 * line is escaped (safeJson), so a log viewer or a terminal never receives ESC, C1 or a newline.
 */
import { safeJson } from "../common/text";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /token|signature|sig$|key$|secret|password|authorization|connectionstring/i;

export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = SECRET_FIELD.test(k) ? "[redacted]" : v;
  return out;
}

export interface LoggerOptions {
  /** Receives whole lines, newline included; stdout by default. */
  write?: (line: string) => void;
  /** Entries below this level are dropped; `info` by default. */
  minLevel?: LogLevel;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const min = ORDER[options.minLevel ?? "info"];
  return {
    log(level, msg, fields = {}) {
      if (ORDER[level] < min) return;
      write(`${safeJson({ time: new Date().toISOString(), level, msg, ...redact(fields) })}\n`);
    },
  };
}

export const silentLogger: Logger = { log: () => undefined };
