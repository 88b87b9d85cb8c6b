/**
 * The idle keepalive (docs/tunnel-protocol.md §6): PING after `intervalMs` of silence (one
 * outstanding), and a timeout after `timeoutMs`. Busy streams send none: any received frame counts.
 */
import { performance } from "node:perf_hooks";

export class Keepalive {
  private lastReceivedAt = 0;
  private pingOutstanding = false;
  private pingNonce = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly ping: (nonce: number) => void,
    private readonly timedOut: (idleMs: number) => void,
  ) {}

  received(): void {
    this.lastReceivedAt = performance.now();
  }

  ponged(): void {
    this.pingOutstanding = false;
  }

  arm(): void {
    const idleFor = performance.now() - this.lastReceivedAt;
    if (idleFor >= this.timeoutMs) return this.timedOut(idleFor);
    if (idleFor >= this.intervalMs && !this.pingOutstanding) {
      this.pingOutstanding = true;
      this.ping(++this.pingNonce);
    }
    const next = this.pingOutstanding ? this.timeoutMs : this.intervalMs;
    this.timer = setTimeout(() => this.arm(), Math.max(1, next - idleFor));
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
