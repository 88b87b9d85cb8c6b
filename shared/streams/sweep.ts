/**
 * Housekeeping, one pass per timer tick: streams whose handshake deadline or lifetime passed, whose
 * `disconnected` event was lost (their connections are asked of the relay), and closed records
 * whose retention ended. The index partition lists what is due.
 */
import type { Logger } from "../log";
import type { Relay } from "../relay/relay";
import type { IndexEntry, StreamStore } from "../store/streamStore";
import { type StreamRecord, isActive, relayGroup } from "./model";
import type { StreamRecords } from "./records";
import { type Presence, decideSweep } from "./transitions";

export interface StreamSweeperDeps {
  store: StreamStore;
  relay: Relay;
  logger: Logger;
  now: () => number;
}

export class StreamSweeper {
  constructor(
    private readonly deps: StreamSweeperDeps,
    private readonly records: StreamRecords,
  ) {}

  private now(): number {
    return this.deps.now();
  }

  /** One pass of the timer: handshake deadlines, lifetimes, lost events, retention. */
  async sweep(): Promise<{ examined: number }> {
    let examined = 0;
    for await (const entry of this.deps.store.due(this.now())) {
      examined++;
      try {
        await this.sweepOne(entry);
      } catch (err) {
        this.deps.logger.log("error", "sweep.failed", {
          streamId: entry.streamId,
          deviceId: entry.deviceId,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    return { examined };
  }

  private async sweepOne(entry: IndexEntry): Promise<void> {
    const { store } = this.deps;
    const current = await store.get(entry.deviceId, entry.streamId);
    if (!current) {
      await store.deleteIndex(entry.streamId);
      return;
    }
    const record = current.value;
    if (!isActive(record.state)) {
      const closedAt = record.closedAt ?? record.createdAt;
      if (entry.phase !== "closed") {
        await this.records.finalize(record);
      } else if (this.now() >= closedAt + this.records.retentionMs()) {
        await store.purge(record.deviceId, record.streamId);
      }
      return;
    }
    const presence = await this.presence(record);
    const outcome = await this.records.mutate(
      record.deviceId,
      record.streamId,
      (r, t) => decideSweep(r, t, presence),
      {},
    );
    if (outcome && isActive(outcome.record.state)) await this.records.schedule(outcome.record);
  }

  private async presence(record: StreamRecord): Promise<Presence | undefined> {
    const now = this.now();
    const mustAsk =
      record.state === "Established" ||
      now > record.handshakeDeadline ||
      (record.expiresAt ?? Infinity) <= now;
    if (!mustAsk) return undefined;
    const connections = await this.deps.relay.groupConnections(relayGroup(record.streamId));
    const ids = new Set(connections.map((c) => c.connectionId));
    return {
      device: record.deviceConnectionId !== undefined && ids.has(record.deviceConnectionId),
      service: record.serviceConnectionId !== undefined && ids.has(record.serviceConnectionId),
    };
  }
}
