import { randomUUID } from "node:crypto";
import { InvocationContext, type Timer } from "@azure/functions";
import type { TimerDef } from "../shared/http/routeTypes";
import type { Logger } from "../shared/log";
import { functionsLogHandler } from "./log";

/**
 * Runs the route table's timers on fixed intervals, standing in for the Functions host's NCRONTAB
 * scheduler. Like a Functions timer (a singleton), a timer never overlaps with itself: the next run
 * is only scheduled once the current one has finished, and occurrences missed meanwhile collapse
 * into one run flagged `isPastDue`.
 */
export class TimerRunner {
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly defs: readonly TimerDef[],
    private readonly logger: Logger,
  ) {
    for (const def of defs) {
      if (!Number.isFinite(def.intervalMs) || def.intervalMs <= 0) {
        throw new RangeError(
          `timer '${def.name}': intervalMs must be a positive number, got ${def.intervalMs}`,
        );
      }
    }
  }

  start(): void {
    const now = Date.now();
    for (const def of this.defs) this.schedule(def, now, now + def.intervalMs, false);
  }

  /** Stops scheduling and waits for runs in progress, so nothing touches storage after close. */
  async close(): Promise<void> {
    this.closed = true;
    for (const handle of this.pending.values()) clearTimeout(handle);
    this.pending.clear();
    await Promise.allSettled([...this.running]);
  }

  private schedule(def: TimerDef, lastDue: number, due: number, isPastDue: boolean): void {
    if (this.closed) return;
    const handle = setTimeout(
      () => {
        this.pending.delete(def.name);
        const run = this.run(def, lastDue, due, isPastDue).catch((err) =>
          this.logger.log("error", "timer scheduling failed", { function: def.name, error: describe(err) }),
        );
        this.running.add(run);
        void run.finally(() => this.running.delete(run));
      },
      Math.max(0, due - Date.now()),
    );
    this.pending.set(def.name, handle);
  }

  private async run(def: TimerDef, lastDue: number, due: number, isPastDue: boolean): Promise<void> {
    const invocationId = randomUUID();
    const fields = { function: def.name, invocationId };
    const timer: Timer = {
      isPastDue,
      schedule: { adjustForDST: false },
      scheduleStatus: {
        last: new Date(lastDue).toISOString(),
        next: new Date(due + def.intervalMs).toISOString(),
        lastUpdated: new Date().toISOString(),
      },
    };
    const context = new InvocationContext({
      invocationId,
      functionName: def.name,
      logHandler: functionsLogHandler(this.logger, fields),
      options: { trigger: { type: "timerTrigger", name: "timer", schedule: def.schedule } },
    });
    const started = performance.now();
    try {
      await def.handler(timer, context);
      this.logger.log("debug", "timer run", { ...fields, isPastDue, ms: elapsed(started) });
    } catch (err) {
      this.logger.log("error", "timer run failed", {
        ...fields,
        isPastDue,
        ms: elapsed(started),
        error: describe(err),
      });
    }
    // Occurrences that passed while this run was busy collapse into the latest one, run at once.
    const now = Date.now();
    let next = due + def.intervalMs;
    const missed = next <= now;
    if (missed) next += Math.floor((now - next) / def.intervalMs) * def.intervalMs;
    this.schedule(def, due, next, missed);
  }
}

export function elapsed(startedAt: number): number {
  return Math.round((performance.now() - startedAt) * 10) / 10;
}

export function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
