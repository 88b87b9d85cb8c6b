/**
 * The queue of openChannel calls waiting for one of the device's channel slots, first come first
 * served: a connection pool or a parallel download briefly above the limit queues instead of failing.
 */
import { TunnelError } from "./errors";

export function channelLimitError(capacity: number): TunnelError {
  return new TunnelError("ChannelLimit", `all ${capacity} channels the device accepts per stream are in use`);
}

export class SlotQueue {
  private readonly waiters: Array<{ wake: () => void }> = [];

  get length(): number {
    return this.waiters.length;
  }

  /** Resolves when a channel finishes (its slot goes to the first waiter); rejects after `ms`. */
  wait(ms: number, capacity: number): Promise<void> {
    if (ms <= 0) return Promise.reject(channelLimitError(capacity));
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(channelLimitError(capacity));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** A slot is free: the first waiter gets it. */
  wakeOne(): void {
    this.waiters.shift()?.wake();
  }

  /** The stream closed: every waiter wakes and sees it. */
  wakeAll(): void {
    for (const waiter of this.waiters.splice(0)) waiter.wake();
  }
}
