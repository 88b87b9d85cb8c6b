/**
 * Web PubSub's events for a stream's two connections (connect, disconnected, the `report` user
 * event). An event names its stream only through the relay user id the control plane minted; the
 * record this instance remembers, else the index, leads to the stored record.
 */
import type { Logger } from "../log";
import type { StreamStore } from "../store/streamStore";
import {
  type Side,
  type StreamRecord,
  connectionIdOf,
  parseRelayUserId,
  relayGroup,
  relayUserId,
} from "./model";
import type { StreamRecords } from "./records";
import {
  type Decision,
  type ReportResult,
  bytesReported,
  decideBytesReported,
  decideConnect,
  decideDisconnected,
} from "./transitions";

export type ConnectOutcome =
  { accept: true; userId: string; group: string } | { accept: false; reason: string };

export interface StreamRelayEventsDeps {
  store: StreamStore;
  logger: Logger;
}

export class StreamRelayEvents {
  constructor(
    private readonly deps: StreamRelayEventsDeps,
    private readonly records: StreamRecords,
  ) {}

  async onConnect(userId: string | undefined, connectionId: string): Promise<ConnectOutcome> {
    const outcome = await this.mutateForRelayUser(userId, (r, side, t) =>
      decideConnect(r, side, connectionId, t),
    );
    if (!outcome) return { accept: false, reason: "unknown or expired stream" };
    const { streamId, side, record, result } = outcome;
    if (!result.accept) {
      this.deps.logger.log("warn", "relay.connect.refused", {
        streamId,
        deviceId: record.deviceId,
        side,
        connectionId,
        reason: result.reason,
      });
      return result;
    }
    return { accept: true, userId: relayUserId(streamId, side), group: relayGroup(streamId) };
  }

  async onDisconnected(
    userId: string | undefined,
    connectionId: string,
    reason: string | undefined,
  ): Promise<void> {
    const outcome = await this.mutateForRelayUser(userId, (r, side, t) =>
      decideDisconnected(r, side, connectionId, reason, t),
    );
    // Duplicated and late events are expected; a debug line shows they were seen and ignored.
    this.deps.logger.log("debug", "relay.disconnected", {
      userId,
      connectionId,
      ...(outcome ? { streamId: outcome.streamId, side: outcome.side, closed: outcome.result.closed } : {}),
    });
  }

  /** `report` user event: a side's byte count, once per connection. */
  async onReport(userId: string | undefined, connectionId: string, bytesSent: number): Promise<ReportResult> {
    // A repeat needs no store call: a recorded report and its connection id never change, so a
    // remembered record that shows this connection's report is the truth whatever others did.
    const parsed = parseRelayUserId(userId);
    const cached = parsed && this.records.remembered(parsed.streamId)?.value;
    if (parsed && cached && connectionIdOf(cached, parsed.side) === connectionId) {
      if (bytesReported(cached, parsed.side))
        return { accepted: false, reason: "this connection already reported" };
    }
    const outcome = await this.mutateForRelayUser(userId, (r, side) =>
      decideBytesReported(r, side, connectionId, bytesSent),
    );
    return outcome?.result ?? { accepted: false, reason: "unknown or expired stream" };
  }

  /** Relay events name a stream only through the user id we minted; the index leads to its record. */
  private async mutateForRelayUser<R>(
    userId: string | undefined,
    decide: (record: StreamRecord, side: Side, now: number) => Decision<R>,
  ): Promise<{ result: R; record: StreamRecord; streamId: string; side: Side } | undefined> {
    const parsed = parseRelayUserId(userId);
    if (!parsed) return undefined;
    const { streamId, side } = parsed;
    const deviceId =
      this.records.remembered(streamId)?.value.deviceId ??
      (await this.deps.store.findIndex(streamId))?.deviceId;
    if (deviceId === undefined) return undefined;
    const outcome = await this.records.mutate(deviceId, streamId, (r, t) => decide(r, side, t), { side });
    return outcome && { ...outcome, streamId, side };
  }
}
