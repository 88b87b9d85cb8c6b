/**
 * Fault injection for the non-blocking events, so consumers can prove their state machines
 * survive what the service may do anyway: lose, repeat, delay or reorder `connected` and
 * `disconnected`.
 */
export type EventFault =
  | { action: "deliver" }
  | { action: "drop" }
  | { action: "duplicate" }
  | { action: "delay"; ms: number }
  /** Held back and sent right after the next non-blocking event (or at shutdown). */
  | { action: "reorder" };

export interface NonBlockingEventInfo {
  hub: string;
  type: "connected" | "disconnected";
  connectionId: string;
  userId: string | undefined;
  /** 1-based count of non-blocking events dispatched by this emulator. */
  sequence: number;
}

export type FaultInjector = (event: NonBlockingEventInfo) => EventFault;

/** Probabilities in [0, 1], drawn from a seeded PRNG so a run is reproducible. */
export interface SeededFaults {
  seed: number;
  drop?: number;
  duplicate?: number;
  delay?: number;
  /** Upper bound of an injected delay; default 200 ms. */
  maxDelayMs?: number;
  reorder?: number;
}

export type FaultConfig = FaultInjector | SeededFaults;

/** mulberry32: tiny, fast, good enough for test schedules. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function toFaultInjector(config: FaultConfig | undefined): FaultInjector {
  if (config === undefined) return () => ({ action: "deliver" });
  if (typeof config === "function") return config;
  const random = prng(config.seed);
  const maxDelay = config.maxDelayMs ?? 200;
  return () => {
    const r = random();
    let edge = config.drop ?? 0;
    if (r < edge) return { action: "drop" };
    edge += config.duplicate ?? 0;
    if (r < edge) return { action: "duplicate" };
    edge += config.delay ?? 0;
    if (r < edge) return { action: "delay", ms: Math.floor(random() * maxDelay) };
    edge += config.reorder ?? 0;
    if (r < edge) return { action: "reorder" };
    return { action: "deliver" };
  };
}
