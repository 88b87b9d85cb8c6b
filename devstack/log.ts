import { format } from "node:util";
import type { LogLevel as FunctionsLogLevel } from "@azure/functions";

import type { Logger, LogLevel } from "../shared/log";

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
