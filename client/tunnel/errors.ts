import type { CloseReason, RefuseReason, ResetReason } from "./reasons";

export type TunnelErrorCode = CloseReason | ResetReason | RefuseReason;

/**
 * The one error type of the tunnel: a stream close, a channel reset or refusal, or a frame the codec
 * rejected. `code` is the reason name of docs/tunnel-protocol.md §7, so callers branch on it.
 */
export class TunnelError extends Error {
  override readonly name = "TunnelError";
  constructor(
    readonly code: TunnelErrorCode,
    message: string,
    /** True when the reason came from the peer (CLOSE, RESET or REFUSE received). */
    readonly byPeer = false,
  ) {
    super(message);
  }
}

export function isTunnelError(err: unknown): err is TunnelError {
  return err instanceof TunnelError;
}
