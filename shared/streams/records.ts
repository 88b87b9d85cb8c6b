/**
 * The read-decide-write loop every change of a stream record goes through (create, relay events,
 * close, the sweep): read with its ETag (or start from the record this instance wrote last), decide
 * with ./transitions, write conditionally, and on a conflict read again and decide again. A write
 * that changes the state is logged, and its side effects follow: a terminal record frees its slot
 * and relay group, an established one is scheduled for the timer.
 */
import type { Logger } from "../log";
import type { Relay } from "../relay/relay";
import { EtagConflictError, type StreamStore, type Versioned } from "../store/streamStore";
import { type Closer, type Side, type StreamRecord, isActive, relayGroup } from "./model";
import { RecentRecords } from "./recent";
import type { Decision } from "./transitions";

export interface StreamRecordsDeps {
  store: StreamStore;
  relay: Relay;
  logger: Logger;
  retentionHours: number;
  now: () => number;
}

/** Who caused a transition, for its log line. */
export interface TransitionContext {
  side?: Side | Closer;
  caller?: string;
}

/** How often an established stream's connections are checked against the relay. */
const PRESENCE_CHECK_MS = 5 * 60_000;
/** Conflicts on one record are rare; this many in a row means something is wrong. */
const MAX_CONFLICT_RETRIES = 20;
/** Instances' clocks may disagree by this much about when retention ends. */
const CLOCK_SKEW_MS = 60_000;
/** A few KiB each; enough for every stream of a busy instance's last minutes. */
const RECENT_RECORDS = 4096;

export class StreamRecords {
  private readonly recent = new RecentRecords(RECENT_RECORDS);

  constructor(private readonly deps: StreamRecordsDeps) {}

  private now(): number {
    return this.deps.now();
  }

  /** A record just created in the store: remembered, and logged as its first transition. */
  created(record: Versioned<StreamRecord>, caller: string): void {
    this.recent.set(record);
    this.logTransition(record.value, undefined, { caller });
  }

  /** The record this instance wrote or read last for a stream, if it still remembers one. */
  remembered(streamId: string): Versioned<StreamRecord> | undefined {
    return this.recent.get(streamId);
  }

  /** Reads, decides and writes until a write holds; undefined when there is no such record. */
  async mutate<R>(
    deviceId: string,
    streamId: string,
    decide: (record: StreamRecord, now: number) => Decision<R>,
    context: TransitionContext,
  ): Promise<{ result: R; record: StreamRecord } | undefined> {
    const cached = this.recent.get(streamId);
    let current = cached?.value.deviceId === deviceId ? cached : undefined;
    let fromCache = current !== undefined;
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      current ??= await this.deps.store.get(deviceId, streamId);
      if (!current) return undefined;
      const decision = decide(current.value, this.now());
      if (!decision.next) {
        // An answer must not rest on a remembered record another instance may have moved on from.
        if (fromCache && !this.finalInMemory(current.value)) {
          current = undefined;
          fromCache = false;
          attempt--;
          continue;
        }
        return { result: decision.result, record: current.value };
      }
      // The write that ends a stream frees its slot with it: one transaction, no slot left behind.
      const ends = isActive(current.value.state) && !isActive(decision.next.state);
      let written: Versioned<StreamRecord>;
      try {
        written = await this.deps.store.replace(current, decision.next, { releaseSlot: ends });
      } catch (err) {
        if (!(err instanceof EtagConflictError)) throw err;
        this.recent.delete(streamId);
        // A stale cache entry is not a conflict between writers; it does not use up a retry.
        if (fromCache) attempt--;
        current = undefined;
        fromCache = false;
        continue;
      }
      this.recent.set(written);
      const before = current.value;
      const after = written.value;
      if (before.state !== after.state) {
        this.logTransition(after, before, context);
        if (!isActive(after.state)) await this.finalizeOrDefer(after, { slotReleased: ends });
        else if (after.state === "Established") await this.schedule(after);
      }
      return { result: decision.result, record: after };
    }
    throw new Error(`stream ${streamId}: ${MAX_CONFLICT_RETRIES} write conflicts in a row`);
  }

  /**
   * Whether a remembered record is still the stored one whatever other instances did: terminal
   * records never change state again, and until retention ends none can have been purged and
   * created anew under the same id (a reused Repeatability-Request-ID).
   */
  private finalInMemory(record: StreamRecord): boolean {
    if (isActive(record.state)) return false;
    const closedAt = record.closedAt ?? record.createdAt;
    return this.now() < closedAt + this.retentionMs() - CLOCK_SKEW_MS;
  }

  retentionMs(): number {
    return this.deps.retentionHours * 3600_000;
  }

  /** When the timer must next look at an active stream. */
  async schedule(record: StreamRecord): Promise<void> {
    const now = this.now();
    const established = record.state === "Established";
    let dueAt = established ? now + PRESENCE_CHECK_MS : Math.max(record.handshakeDeadline, now + 1000);
    if (record.expiresAt !== undefined) dueAt = Math.min(dueAt, record.expiresAt);
    await this.deps.store.setIndex({
      streamId: record.streamId,
      deviceId: record.deviceId,
      dueAt,
      phase: established ? "established" : "handshake",
    });
  }

  /**
   * Side effects of reaching a terminal state, idempotent. The index row turns "closed" last, so
   * if the relay cannot be reached now the sweeper sees a terminal record with a live index row
   * and finishes the job.
   */
  async finalize(record: StreamRecord, done: { slotReleased?: boolean } = {}): Promise<void> {
    const { store, relay } = this.deps;
    if (!done.slotReleased) await store.releaseSlot(record);
    await relay.closeGroup(
      relayGroup(record.streamId),
      `${record.closeCode ?? "Closed"}: ${record.closeReason ?? ""}`,
    );
    await store.setIndex({
      streamId: record.streamId,
      deviceId: record.deviceId,
      dueAt: (record.closedAt ?? this.now()) + this.retentionMs(),
      phase: "closed",
    });
  }

  /** After a transition the caller's answer must not depend on the relay being reachable. */
  private async finalizeOrDefer(record: StreamRecord, done: { slotReleased?: boolean }): Promise<void> {
    try {
      await this.finalize(record, done);
    } catch (err) {
      this.deps.logger.log("warn", "stream.finalize.deferred", {
        streamId: record.streamId,
        deviceId: record.deviceId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  private logTransition(
    after: StreamRecord,
    before: StreamRecord | undefined,
    context: TransitionContext,
  ): void {
    const now = this.now();
    this.deps.logger.log("info", "stream.transition", {
      streamId: after.streamId,
      deviceId: after.deviceId,
      ...(after.moduleId !== undefined ? { moduleId: after.moduleId } : {}),
      name: after.name,
      side: context.side ?? after.closedBy,
      from: before?.state ?? null,
      to: after.state,
      ...(after.closeCode ? { code: after.closeCode, reason: after.closeReason } : {}),
      ageMs: now - after.createdAt,
      ...(after.establishedAt !== undefined && after.acceptedAt !== undefined
        ? { handshakeMs: after.establishedAt - after.createdAt }
        : {}),
      caller: context.caller ?? after.openedBy,
    });
  }
}
