/** What the CLI and its command modules share: the injected process, and a command's context. */
import type { Readable, Writable } from "node:stream";
import type { Command } from "commander";
import type { Settings } from "./config";

/** What an extension's commands get from the CLI. */
export interface CliExtensionContext {
  settings: Settings;
  out: (text: string) => void;
  err: (text: string) => void;
  /** The working directory. */
  cwd: string;
  /** The relay the agent may join, as the control plane reports it (in agent-flag form). */
  relay: () => Promise<{ endpoint: string; hub: string }>;
}

/**
 * Adds commands to the program. The checkout's bin adds the local stack's `dev` commands this way,
 * so the client itself never imports the local stack. It runs at every start: load in actions.
 */
export type CliExtension = (program: Command, context: CliExtensionContext) => void;

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * The checkout's `.devstack/env`, read when no configuration file is named (docs/decisions.md
   * §1 rule 4); the bin derives it from its own location. Absent: no such file.
   */
  checkoutConfig?: string | undefined;
  /** Aborted on SIGINT / SIGTERM: long-running commands shut down cleanly and return 0. */
  signal: AbortSignal;
  /** Long-running commands call this once they serve (tests wait on it). */
  onReady?: (info: { command: string; address?: { host: string; port: number } }) => void;
  /**
   * What would still keep the process alive once the command is over; `--verbose` prints it. Only
   * the bin has a process to look at: in-process callers leave it out.
   */
  openHandles?: () => Promise<string[]>;
  /** Commands added by the host of this CLI (the checkout's bin adds `dev`). */
  extensions?: readonly CliExtension[];
}

/** What each command module gets from buildProgram. */
export interface CommandContext {
  io: CliIo;
  settings: Settings;
  out: (text: string) => void;
  err: (text: string) => void;
  /** A log line that carries text a device, the relay or the control plane chose. */
  logLine: (line: string) => void;
  /** `--json` output, or the human form. */
  print: (json: boolean | undefined, value: unknown, human: () => string) => void;
  setExit: (code: number) => void;
}

export function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
