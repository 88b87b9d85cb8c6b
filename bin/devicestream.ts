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
  (code) => exitWhenFlushed(code),
  (err: unknown) => {
    console.error(err);
    exitWhenFlushed(1);
  },
);

/**
 * A command is over when runCli settles. Whatever handle is still open then (a relay socket
 * still closing, stdin, a keep-alive agent) must not keep the process alive: a ProxyCommand or a
 * script waits on this exit. The write callbacks ensure what was printed is out first.
 */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  process.stdin.destroy();
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
