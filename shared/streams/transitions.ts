/**
 * The stream state machine as pure decisions: given the record as last read and an event, say
 * what the record becomes and what the caller must do. Storage, retries on ETag conflicts and
 * side effects live in the service; keeping this pure is what lets every race be tested by
 * replaying events in every order.
 *
 *   Requested ──accept──▶ Accepted ──both sides connected──▶ Established
 *       │                    │                                   │
 *       └──reject / offline / timeout / failure / any disconnect / close──▶ terminal
 */
import {
  type CloseCode,
  type Closer,
  type Side,
  type StreamRecord,
  type StreamState,
  connectionIdOf,
  isActive,
  otherSide,
} from "./model";

export type Decision<R> = { next?: StreamRecord; result: R };

export type ConnectResult = { accept: true } | { accept: false; reason: string };

export function decideConnect(
  record: StreamRecord,
  side: Side,
  connectionId: string,
  now: number,
): Decision<ConnectResult> {
  const reject = (reason: string): Decision<ConnectResult> => ({ result: { accept: false, reason } });
  const existing = connectionIdOf(record, side);
  // The relay may deliver the same blocking event twice; the same connection is the same use.
  if (existing === connectionId) return { result: { accept: true } };
  if (!isActive(record.state)) return reject(`the stream is ${record.state}`);
  if (existing !== undefined) return reject(`the ${side} relay credential was already used`);
  if (now > record.handshakeDeadline) return reject("the handshake deadline has passed");
  if (side === "device" && record.state !== "Requested" && record.state !== "Accepted") {
    return reject(`the device cannot join a stream that is ${record.state}`);
  }
  if (side === "service" && record.state !== "Accepted") {
    return reject("the service side may join only after the device accepted");
  }
  const next: StreamRecord =
    side === "service"
      ? { ...record, serviceConnectionId: connectionId }
      : { ...record, deviceConnectionId: connectionId };
  if (connectionIdOf(next, otherSide(side)) !== undefined && next.state === "Accepted") {
    next.state = "Established";
    next.establishedAt = now;
  }
  return { next, result: { accept: true } };
}

export type AcceptResult = { ok: true } | { ok: false; state: StreamState; reason?: string };

/** The direct method answered "accepted". */
export function decideAccepted(
  record: StreamRecord,
  now: number,
  responseData?: string,
): Decision<AcceptResult> {
  if (record.state === "Accepted" || record.state === "Established") return { result: { ok: true } };
  if (record.state !== "Requested") {
    return {
      result: {
        ok: false,
        state: record.state,
        ...(record.closeReason ? { reason: record.closeReason } : {}),
      },
    };
  }
  const next: StreamRecord = { ...record, state: "Accepted", acceptedAt: now };
  if (responseData !== undefined) next.responseData = responseData;
  return { next, result: { ok: true } };
}

export type HandshakeFailure = "Rejected" | "DeviceOffline" | "TimedOut" | "Failed";

/** The direct method failed or the device said no. Only a stream still being set up can fail so. */
export function decideHandshakeFailed(
  record: StreamRecord,
  state: HandshakeFailure,
  code: CloseCode,
  reason: string,
  now: number,
  responseData?: string,
): Decision<{ changed: boolean }> {
  if (record.state !== "Requested" && record.state !== "Accepted") return { result: { changed: false } };
  const next: StreamRecord = {
    ...record,
    state,
    closeCode: code,
    closeReason: reason,
    closedAt: now,
    closedBy: state === "Rejected" ? "device" : "control-plane",
  };
  if (responseData !== undefined) next.responseData = responseData;
  return { next, result: { changed: true } };
}

export type DisconnectResult = { closed: true; otherConnectionId?: string } | { closed: false };

/** `disconnected` is terminal from any active state: it is forceful termination, as in device streams. */
export function decideDisconnected(
  record: StreamRecord,
  side: Side,
  connectionId: string,
  reason: string | undefined,
  now: number,
): Decision<DisconnectResult> {
  if (!isActive(record.state)) return { result: { closed: false } };
  // A connection we never accepted for this side (a refused or superseded attempt) ends nothing.
  if (connectionIdOf(record, side) !== connectionId) return { result: { closed: false } };
  const next: StreamRecord = {
    ...record,
    state: "Closed",
    closedAt: now,
    closedBy: side,
    closeCode: "SideDisconnected",
    closeReason: reason && reason.trim() !== "" ? reason : `the ${side} side disconnected`,
  };
  const other = connectionIdOf(record, otherSide(side));
  return { next, result: { closed: true, ...(other ? { otherConnectionId: other } : {}) } };
}

/** Closing by the API, the lifetime limit, or a connection found gone. */
export function decideClose(
  record: StreamRecord,
  closer: Closer,
  code: CloseCode,
  reason: string,
  now: number,
): Decision<{ closed: boolean }> {
  if (!isActive(record.state)) return { result: { closed: false } };
  return { ...decideCloseNext(record, closer, code, reason, now), result: { closed: true } };
}

/** What Web PubSub says is connected right now, asked before the sweeper kills anything. */
export interface Presence {
  device: boolean;
  service: boolean;
}

export type SweepResult =
  | { action: "none" }
  | { action: "repaired" }
  | { action: "timedOut" }
  | { action: "expired" }
  | { action: "lost"; side: Side };

export function decideSweep(
  record: StreamRecord,
  now: number,
  presence: Presence | undefined,
): Decision<SweepResult> {
  if (!isActive(record.state)) return { result: { action: "none" } };
  if (record.expiresAt !== undefined && now >= record.expiresAt) {
    return {
      ...decideCloseNext(
        record,
        "control-plane",
        "MaxLifetimeReached",
        "the maximum stream lifetime was reached",
        now,
      ),
      result: { action: "expired" },
    };
  }
  if (record.state === "Established") {
    if (presence === undefined) return { result: { action: "none" } };
    // A lost `disconnected` event would otherwise hold the stream and its slot forever.
    for (const side of ["device", "service"] as const) {
      if (!presence[side]) {
        return {
          ...decideCloseNext(
            record,
            side,
            "ConnectionLost",
            `the ${side} connection is gone (its disconnected event was lost)`,
            now,
          ),
          result: { action: "lost", side },
        };
      }
    }
    return { result: { action: "none" } };
  }
  if (now <= record.handshakeDeadline) return { result: { action: "none" } };
  if (
    presence?.device &&
    presence.service &&
    record.state === "Accepted" &&
    record.deviceConnectionId !== undefined &&
    record.serviceConnectionId !== undefined
  ) {
    // Both sides are on the relay: a lost update, not a dead stream.
    return { next: { ...record, state: "Established", establishedAt: now }, result: { action: "repaired" } };
  }
  return {
    next: {
      ...record,
      state: "TimedOut",
      closedAt: now,
      closedBy: "control-plane",
      closeCode: "HandshakeTimeout",
      closeReason: "both sides did not join the relay before the handshake deadline",
    },
    result: { action: "timedOut" },
  };
}

function decideCloseNext(
  record: StreamRecord,
  closer: Closer,
  code: CloseCode,
  reason: string,
  now: number,
): { next: StreamRecord } {
  return {
    next: {
      ...record,
      state: "Closed",
      closedAt: now,
      closedBy: closer,
      closeCode: code,
      closeReason: reason,
    },
  };
}

export type ReportResult = { accepted: true } | { accepted: false; reason: string };

/**
 * A side's byte count. Each connection has one legitimate report, sent just before it closes, so
 * it is accepted in any state (it may race the close) but only once, and only from the connection
 * the side joined with. The record is what remembers it, on every instance.
 */
export function decideBytesReported(
  record: StreamRecord,
  side: Side,
  connectionId: string,
  bytesSent: number,
): Decision<ReportResult> {
  if (connectionIdOf(record, side) !== connectionId) {
    return { result: { accepted: false, reason: `not the ${side} side's connection` } };
  }
  if (bytesReported(record, side)) {
    return { result: { accepted: false, reason: "this connection already reported" } };
  }
  const next =
    side === "service"
      ? { ...record, bytesFromService: bytesSent }
      : { ...record, bytesFromDevice: bytesSent };
  return { next, result: { accepted: true } };
}

export function bytesReported(record: StreamRecord, side: Side): boolean {
  return (side === "service" ? record.bytesFromService : record.bytesFromDevice) !== undefined;
}
