/**
 * Fault injection, so consumers can prove their state machines survive what the service may do
 * anyway: lose, repeat, delay or reorder `connected` and `disconnected`, and answer any event with
 * a 5xx a few times so that the service's retries (events.ts) are exercised on purpose.
 */
export type EventFault =
  | { action: "deliver" }
  | { action: "drop" }
  | { action: "duplicate" }
  | { action: "delay"; ms: number }
  /** Held back and sent right after the next non-blocking event (or at shutdown). */
  | { action: "reorder" }
  /**
   * The first `times` attempts are answered `status` (default 503), which the retry policy
   * retries. With `reachesHandler` (the default) each of those attempts is still sent and the
   * handler's own answer is discarded, as when a gateway in front of it fails after it has done
   * the work; without it, the attempts never reach the handler.
   */
  | { action: "serverError"; times: number; status?: number; reachesHandler?: boolean };

export interface EventInfo {
  hub: string;
  /** `user` for user events (their name is in `event`). */
  type: "connect" | "connected" | "disconnected" | "user";
  event: string;
  connectionId: string;
  userId: string | undefined;
  /** 1-based count of events dispatched by this emulator. */
  sequence: number;
}

/** The name this type had while only non-blocking events went through faults. */
export type NonBlockingEventInfo = EventInfo;

/**
 * Called once per event. Blocking events (`connect`, user events) honour only `deliver` and
 * `serverError`: the others would change what the client is answered, not how events arrive.
 */
export type FaultInjector = (event: EventInfo) => EventFault;

/** Probabilities in [0, 1], drawn from a seeded PRNG so a run is reproducible. */
export interface SeededFaults {
  seed: number;
  drop?: number;
  duplicate?: number;
  delay?: number;
  /** Upper bound of an injected delay; default 200 ms. */
  maxDelayMs?: number;
  reorder?: number;
  /** Probability that an event (blocking ones too) is answered 503 `serverErrorTimes` times. */
  serverError?: number;
  /** Default 2: retried after 1 and 3 s, then delivered. */
  serverErrorTimes?: number;
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

export function isBlocking(type: EventInfo["type"]): boolean {
  return type === "connect" || type === "user";
}

export function toFaultInjector(config: FaultConfig | undefined): FaultInjector {
  if (config === undefined) return () => ({ action: "deliver" });
  if (typeof config === "function") return config;
  const random = prng(config.seed);
  const maxDelay = config.maxDelayMs ?? 200;
  const serverError = config.serverError ?? 0;
  const failing: EventFault = { action: "serverError", times: config.serverErrorTimes ?? 2 };
  return (event) => {
    // Blocking events draw only when they can fail, so adding none keeps older schedules.
    if (isBlocking(event.type)) {
      return serverError > 0 && random() < serverError ? failing : { action: "deliver" };
    }
    const r = random();
    let edge = config.drop ?? 0;
    if (r < edge) return { action: "drop" };
    edge += config.duplicate ?? 0;
    if (r < edge) return { action: "duplicate" };
    edge += config.delay ?? 0;
    if (r < edge) return { action: "delay", ms: Math.floor(random() * maxDelay) };
    edge += config.reorder ?? 0;
    if (r < edge) return { action: "reorder" };
    edge += serverError;
    if (r < edge) return failing;
    return { action: "deliver" };
  };
}
