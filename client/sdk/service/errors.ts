/**
 * The service SDK's one error type (checked by `name`, branch on `code`). `code` is the control
 * plane's error code (e.g. `DeviceNotOnline`, `StreamRejected`), or one of the client's own:
 * `ServiceUnreachable`, `InvalidResponse`, `Relay*` (from the relay client) and tunnel close reasons.
 */
export class StreamsError extends Error {
  override readonly name = "StreamsError";
  constructor(
    readonly code: string,
    message: string,
    /** The HTTP status when the control plane answered. */
    readonly statusCode?: number,
    /** Extra fields of the error body, e.g. the device's `reason` for StreamRejected. */
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStreamsError(err: unknown): err is StreamsError {
  return err instanceof Error && err.name === "StreamsError";
}
