/**
 * The process around the CLI, for both entry points: the installed package's bin
 * (client/bin/devicestream.ts) and the checkout's (bin/devicestream.ts, which adds the local
 * stack's `dev` commands and reads the checkout's `.devstack/env`).
 */
import { setImmediate as turn } from "node:timers/promises";
import { openHandles } from "./handles";
import type { CliExtension } from "./io";
import { runCli } from "./program";

export interface MainOptions {
  /** The checkout's `.devstack/env` (docs/decisions.md §1 rule 4); an installed CLI has none. */
  checkoutConfig?: string | undefined;
  extensions?: readonly CliExtension[];
}

export function main(options: MainOptions = {}): void {
  const controller = new AbortController();
  // SIGHUP too: OpenSSH sends it to its ProxyCommand (`connect`) when the session ends, and Node's
  // default would kill the process before it closed its stream, which then ends as an abnormal 1006.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => controller.abort());
  }
  runCli(process.argv.slice(2), {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    checkoutConfig: options.checkoutConfig,
    signal: controller.signal,
    extensions: options.extensions ?? [],
    openHandles: async () => {
      releaseStdin();
      // Handles closed by the command's last callbacks finish closing in the loop's close phase.
      await turn();
      await turn();
      return openHandles([process.stdin, process.stdout, process.stderr]);
    },
  }).then(
    (code) => exitWhenFlushed(code),
    (err: unknown) => {
      console.error(err);
      exitWhenFlushed(1);
    },
  );
}

/** A command that read stdin (connect, echo) is done with it; stdin is the process's, not its. */
function releaseStdin(): void {
  process.stdin.destroy();
}

/**
 * A command is over when runCli settles, and it closes what it opened (`--verbose` says whether
 * anything is left). Whatever a dependency might still hold must not keep the process alive even
 * so: a ProxyCommand or a script waits on this exit. The write callbacks ensure what was printed is
 * out first.
 */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  releaseStdin();
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
