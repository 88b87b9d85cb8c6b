/** The stream record and its vocabulary; storage-agnostic. */
import { randomBytes } from "node:crypto";
import type { Side } from "../../common/relay";

export { relayGroup, relayUserId, type Side } from "../../common/relay";

export const STREAM_STATES = [
  "Requested",
  "Accepted",
  "Established",
  "Rejected",
  "DeviceOffline",
  "TimedOut",
  "Failed",
  "Closed",
] as const;
export type StreamState = (typeof STREAM_STATES)[number];

export const ACTIVE_STATES: readonly StreamState[] = ["Requested", "Accepted", "Established"];

export function isActive(state: StreamState): boolean {
  return ACTIVE_STATES.includes(state);
}

/** Who ended a stream: one of the two relay sides, or the control plane itself. */
export type Closer = Side | "control-plane" | "api";

export const CLOSE_CODES = [
  "StreamRejected",
  "UnsupportedOfferVersion",
  "DeviceNotFound",
  "ModuleNotFound",
  "DeviceNotOnline",
  "DeviceTimeout",
  "Throttled",
  "UpstreamError",
  "InvalidDeviceResponse",
  "HandshakeTimeout",
  "StreamClosedDuringHandshake",
  "SideDisconnected",
  "ConnectionLost",
  "MaxLifetimeReached",
  "ClosedByApi",
] as const;
export type CloseCode = (typeof CLOSE_CODES)[number];

export interface StreamRecord {
  streamId: string;
  deviceId: string;
  moduleId?: string;
  name: string;
  state: StreamState;
  openedBy: string;
  /** JSON text of the request data, bounded by STREAMS_MAX_DATA_BYTES (store/limits.ts). */
  requestData?: string;
  /** JSON text of the device's accept/reject data, bounded by streams/answer.ts. */
  responseData?: string;
  createdAt: number;
  acceptedAt?: number;
  establishedAt?: number;
  closedAt?: number;
  /** Epoch ms by which both sides must be on the relay. */
  handshakeDeadline: number;
  /** Epoch ms after which the stream is closed (maximum lifetime); absent = unlimited. */
  expiresAt?: number;
  deviceConnectionId?: string;
  serviceConnectionId?: string;
  /** Machine-readable cause of the end, from CLOSE_CODES; closeReason is for people. */
  closeCode?: CloseCode;
  closeReason?: string;
  closedBy?: Closer;
  /** Byte counts reported by clients when they close (best effort). */
  bytesFromService?: number;
  bytesFromDevice?: number;
  /** Index of the concurrency slot this stream holds while active. */
  slot: number;
  /** The caller whose share of the device's slots this stream counts against, and its slot in it. */
  callerKey?: string;
  callerSlot?: number;
  repeatabilityId?: string;
}

const STREAM_ID = /^[A-Za-z0-9_-]{16,64}$/;

/**
 * Stream ids are command-line arguments (`devicestream streams close DEVICE ID`), where one that
 * starts with "-" reads as an option; base64url starts one id in 64 that way.
 */
export function argumentSafeId(id: string): string {
  return id.startsWith("-") ? `A${id.slice(1)}` : id;
}

/** 128 random bits, base64url. */
export function newStreamId(): string {
  return argumentSafeId(randomBytes(16).toString("base64url"));
}

export function isStreamId(value: string): boolean {
  return STREAM_ID.test(value);
}

/** Inverse of relayUserId; undefined for anything we did not mint. */
export function parseRelayUserId(userId: string | undefined): { streamId: string; side: Side } | undefined {
  if (!userId) return undefined;
  const dot = userId.lastIndexOf(".");
  const streamId = userId.slice(0, dot);
  const side = userId.slice(dot + 1);
  if (dot <= 0 || !isStreamId(streamId) || (side !== "service" && side !== "device")) return undefined;
  return { streamId, side };
}

export function otherSide(side: Side): Side {
  return side === "service" ? "device" : "service";
}

export function connectionIdOf(record: StreamRecord, side: Side): string | undefined {
  return side === "service" ? record.serviceConnectionId : record.deviceConnectionId;
}
