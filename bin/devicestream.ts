#!/usr/bin/env node
/** `devicestream`: see docs/cli.md. */
import { runCli } from "../shared/cli/program";

const controller = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => controller.abort());
}
runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  signal: controller.signal,
}).then(
  (code) => {
    process.exitCode = code;
    // A command that read stdin (connect, echo) must not be kept alive by it once done.
    process.stdin.destroy();
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
