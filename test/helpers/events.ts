import { once, type EventEmitter } from "node:events";

/** Rejects with a message naming what was awaited if `promise` has not settled within `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** `events.once` with a deadline. */
export function onceWithin(emitter: EventEmitter, event: string, ms = 10_000): Promise<unknown[]> {
  return withDeadline(once(emitter, event), ms, `'${event}'`);
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Collects values as they happen (log lines, handler calls) and lets a test wait until the
 * collection satisfies a condition: re-checked on every push, so nothing polls or sleeps.
 */
export class Recorder<T> {
  readonly items: T[] = [];
  private waiters: { check: (items: readonly T[]) => boolean; done: () => void }[] = [];

  push = (item: T): void => {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (!w.check(this.items)) return true;
      w.done();
      return false;
    });
  };

  async waitFor(check: (items: readonly T[]) => boolean, what: string, ms = 10_000): Promise<readonly T[]> {
    if (check(this.items)) return this.items;
    const met = deferred();
    const waiter = { check, done: () => met.resolve() };
    this.waiters.push(waiter);
    try {
      await withDeadline(met.promise, ms, what);
    } finally {
      this.waiters = this.waiters.filter((w) => w !== waiter);
    }
    return this.items;
  }
}
