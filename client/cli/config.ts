/**
 * Where the CLI finds its control-plane credentials: the flag, then the environment, then the
 * `.devstack/env` file that `npm start` writes (the nearest one from the current directory up).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { UsageError, parseEnvFile } from "./args";

export const CONNECTION_STRING_VAR = "DEVICESTREAM_CONNECTION_STRING";

/** The nearest `.devstack/env` at or above `cwd`, parsed; empty when there is none. */
export function readDevstackEnv(
  cwd: string,
  exists: (path: string) => boolean = existsSync,
  read = (p: string) => readFileSync(p, "utf8"),
) {
  for (let dir = cwd; ; dir = dirname(dir)) {
    const file = join(dir, ".devstack", "env");
    if (exists(file)) return { file, values: parseEnvFile(read(file)) };
    if (dirname(dir) === dir) return undefined;
  }
}

export interface Settings {
  /** Looks a setting up: environment first, then `.devstack/env`. */
  get(name: string): string | undefined;
}

export function settings(env: NodeJS.ProcessEnv, cwd: string): Settings {
  let devstack: ReturnType<typeof readDevstackEnv> | null = null;
  return {
    get: (name) => {
      const fromEnv = env[name];
      if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
      devstack ??= readDevstackEnv(cwd);
      return devstack?.values[name];
    },
  };
}

export function requireConnectionString(flag: string | undefined, s: Settings): string {
  const value = flag ?? s.get(CONNECTION_STRING_VAR);
  if (!value) {
    throw new UsageError(
      `no control-plane credentials: pass --connection-string, set ${CONNECTION_STRING_VAR} ` +
        "(Endpoint=...;SharedAccessKeyName=...;SharedAccessKey=...), or run `npm start` here, which writes .devstack/env",
    );
  }
  return value;
}
