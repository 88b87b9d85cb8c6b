export { TunnelChannel } from "./channel";
export {
  type DecodeResult,
  type Frame,
  type FrameType,
  type HelloFields,
  type WindowEntry,
  FEATURES,
  HEADER_SIZE,
  LIMITS,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeData,
  encodeFrame,
} from "./codec";
export { TunnelError, type TunnelErrorCode, isTunnelError } from "./errors";
export {
  type FaultAction,
  type MemoryRelay,
  type MemoryRelayOptions,
  MemoryRelayEndpoint,
  createMemoryRelay,
} from "./memoryRelay";
export {
  CLOSE_REASONS,
  type CloseReason,
  REFUSE_REASONS,
  type RefuseReason,
  RESET_REASONS,
  type ResetReason,
  type SendableCloseReason,
  type SendableRefuseReason,
  type SendableResetReason,
} from "./reasons";
export {
  type ChannelDecision,
  type ChannelRequest,
  DEFAULT_TUNNEL_OPTIONS,
  type TunnelCloseInfo,
  type TunnelRole,
  type TunnelSessionOptions,
  type TunnelStats,
} from "./options";
export { CLOSE_ANSWER_TIMEOUT_MS, TunnelSession } from "./session";
export type { TunnelTransport } from "./transport";
