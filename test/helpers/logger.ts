import type { Logger, LogLevel } from "../../shared/log";
import { Recorder } from "./events";

export interface LogEntry {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown>;
}

/** A Logger whose entries a test can inspect and wait on. */
export function recordingLogger(): { logger: Logger; entries: Recorder<LogEntry> } {
  const entries = new Recorder<LogEntry>();
  return {
    logger: { log: (level, message, fields = {}) => entries.push({ level, message, fields }) },
    entries,
  };
}
