import { format } from "node:util";
import type { LogLevel as FunctionsLogLevel } from "@azure/functions";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured log sink of the local stack: one message plus flat fields per entry. */
export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface JsonLineLoggerOptions {
  write?: (line: string) => void;
  /** Entries below this level are dropped; `info` by default, so timer heartbeats stay quiet. */
  minLevel?: LogLevel;
}

/** One JSON object per line, so the output can be grepped and parsed alike. */
export function jsonLineLogger(options: JsonLineLoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const min = RANK[options.minLevel ?? "info"];
  return {
    log(level, message, fields = {}) {
      if (RANK[level] < min) return;
      write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields })}\n`);
    },
  };
}

export const silentLogger: Logger = { log() {} };

const FROM_FUNCTIONS: Record<FunctionsLogLevel, LogLevel | undefined> = {
  trace: "debug",
  debug: "debug",
  information: "info",
  warning: "warn",
  error: "error",
  critical: "error",
  none: undefined,
};

/** Routes `context.log(...)` of a handler to the host logger, tagged with the invocation. */
export function functionsLogHandler(logger: Logger, fields: Record<string, unknown>) {
  return (level: FunctionsLogLevel, ...args: unknown[]): void => {
    const ours = FROM_FUNCTIONS[level];
    if (ours) logger.log(ours, format(...args), fields);
  };
}
