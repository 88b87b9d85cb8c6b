/**
 * The records this instance wrote last, with their ETags. A stream's events (accept, both relay
 * connects, close, both disconnects, byte reports) mostly reach the instance that created it, one
 * after another; starting each read-decide-write from the record we wrote ourselves saves a table
 * read per event, and for relay events the index lookup too. The table stays the authority: every
 * write is conditional on the cached ETag, so a stale entry (another instance wrote since) costs
 * one 412 and a fresh read, never a wrong write.
 */
import type { Versioned } from "../store/streamStore";
import type { StreamRecord } from "./model";

export class RecentRecords {
  /** Insertion order is recency order: set() re-inserts. */
  private readonly byStream = new Map<string, Versioned<StreamRecord>>();

  constructor(private readonly capacity: number) {}

  get(streamId: string): Versioned<StreamRecord> | undefined {
    return this.byStream.get(streamId);
  }

  set(entry: Versioned<StreamRecord>): void {
    const id = entry.value.streamId;
    this.byStream.delete(id);
    this.byStream.set(id, entry);
    if (this.byStream.size > this.capacity) {
      const oldest = this.byStream.keys().next().value;
      if (oldest !== undefined) this.byStream.delete(oldest);
    }
  }

  delete(streamId: string): void {
    this.byStream.delete(streamId);
  }
}
