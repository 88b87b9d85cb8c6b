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

/** "Unknown" stands for a code a later protocol version may add. */
export type CloseReason = (typeof CLOSE_REASONS)[number] | "Unknown";
export type ResetReason = (typeof RESET_REASONS)[number] | "Unknown";
export type RefuseReason = (typeof REFUSE_REASONS)[number] | "Unknown";

export function reasonName<T extends string>(list: readonly T[], code: number): T | "Unknown" {
  return list[code] ?? "Unknown";
}

export function reasonCode(list: readonly string[], name: string): number {
  const code = list.indexOf(name);
  if (code < 0) throw new RangeError(`unknown reason ${name}`);
  return code;
}
