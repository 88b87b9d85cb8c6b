/**
 * A bench piece in a process of its own (the channels bench's agent, the floor's device side): the
 * child gets its start message over IPC, answers once ready, and ends when the IPC channel closes.
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";

export interface BenchChild {
  child: ChildProcess;
  /** Disconnects (the child closes what it holds and exits); SIGKILL if it has not gone in 5 s. */
  stop: () => Promise<void>;
}

export async function forkBenchChild(
  file: string,
  flag: string,
  start: unknown,
  options: { label: string; execArgv?: string[]; stdout?: "ignore" | "inherit" },
): Promise<BenchChild> {
  const child = fork(file, [flag], {
    stdio: ["ignore", options.stdout ?? "ignore", "inherit", "ipc"],
    execArgv: options.execArgv ?? [],
  });
  const exited = once(child, "exit");
  child.send(start as object);
  await Promise.race([
    once(child, "message"),
    exited.then(() => {
      throw new Error(`${options.label} exited before it was ready`);
    }),
  ]);
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // A disconnect lets it close its connections (and write a profile); SIGKILL if it hangs.
      child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
