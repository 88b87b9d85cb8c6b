/**
 * `devicestream` run in process (runCli with piped stdio): its output as it arrives, its readiness
 * (long-running commands), and a stop that is the SIGINT / SIGTERM of the bin.
 */
import { tmpdir } from "node:os";
import { PassThrough } from "node:stream";
import { type CliIo, runCli } from "../../client/cli/program";
import { Recorder, deferred } from "./events";

export interface Run {
  code: Promise<number>;
  stdin: PassThrough;
  stdout: () => string;
  /** stdout chunks as they arrive, to wait on. */
  output: Recorder<string>;
  stderr: () => string;
  /** stderr lines as they arrive, to wait on. */
  lines: Recorder<string>;
  ready: Promise<{ address?: { host: string; port: number } }>;
  stop: () => void;
}

/** A `run(args, env?, cwd?, extra?)` whose environment starts from `baseEnv()` (the stack's credentials). */
export function cliRunner(baseEnv: () => Record<string, string>) {
  return function run(
    args: string[],
    env: Record<string, string> = {},
    cwd = tmpdir(),
    extra: Partial<CliIo> = {},
  ): Run {
    const controller = new AbortController();
    const stdin = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const output = new Recorder<string>();
    const stdout = new PassThrough().on("data", (b: Buffer) => {
      out.push(b);
      output.push(b.toString());
    });
    const lines = new Recorder<string>();
    const stderr = new PassThrough().on("data", (b: Buffer) => {
      err.push(b);
      for (const line of b.toString().split("\n")) if (line) lines.push(line);
    });
    const ready = deferred<{ address?: { host: string; port: number } }>();
    const io: CliIo = {
      stdin,
      stdout,
      stderr,
      env: { ...baseEnv(), ...env },
      cwd,
      signal: controller.signal,
      onReady: (info) => ready.resolve(info),
      ...extra,
    };
    const code = runCli(args, io);
    void code.then(() => ready.reject(new Error(`exited early: ${Buffer.concat(err).toString()}`)));
    ready.promise.catch(() => undefined); // only long-running commands are awaited for readiness
    return {
      code,
      stdin,
      stdout: () => Buffer.concat(out).toString(),
      output,
      stderr: () => Buffer.concat(err).toString(),
      lines,
      ready: ready.promise,
      stop: () => controller.abort(),
    };
  };
}
