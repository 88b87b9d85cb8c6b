/**
 * Reason codes of docs/tunnel-protocol.md §7. Wire values are the array indexes, so the order of
 * each list is part of the protocol: append only.
 */
export const CLOSE_REASONS = [
  "Normal",
  "GoingAway",
  "ProtocolError",
  "FrameCorrupt",
  "SequenceError",
  "FlowControlError",
  "VersionMismatch",
  "HandshakeTimeout",
  "KeepaliveTimeout",
  "TransportClosed",
  "InternalError",
] as const;
export const RESET_REASONS = ["Cancelled", "ApplicationError", "TargetError"] as const;
export const REFUSE_REASONS = ["Refused", "ChannelLimit", "TargetUnavailable"] as const;

/** The reasons this version sends. */
export type SendableCloseReason = (typeof CLOSE_REASONS)[number];
export type SendableResetReason = (typeof RESET_REASONS)[number];
export type SendableRefuseReason = (typeof REFUSE_REASONS)[number];
/** Received reasons: "Unknown" stands for a code a later protocol version may add. */
export type CloseReason = SendableCloseReason | "Unknown";
export type ResetReason = SendableResetReason | "Unknown";
export type RefuseReason = SendableRefuseReason | "Unknown";

export function reasonName<T extends string>(list: readonly T[], code: number): T | "Unknown" {
  return list[code] ?? "Unknown";
}

/** The wire code of a reason; "Unknown" (only ever received) is re-sent as `fallback`. */
export function reasonCode(list: readonly string[], name: string, fallback: string): number {
  const code = list.indexOf(name);
  return code >= 0 ? code : list.indexOf(fallback);
}
