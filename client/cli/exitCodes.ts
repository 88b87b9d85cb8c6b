/** Exit codes of `devicestream` (docs/cli.md). Scripts branch on them, so they never change meaning. */
export const EXIT = {
  ok: 0,
  /** Unexpected failure (a bug, or an error with no better code). */
  error: 1,
  /** Bad arguments or configuration: fix the command line or the environment. */
  usage: 2,
  /** Authentication or authorization refused (401/403). */
  auth: 3,
  /** The device or stream does not exist (404 DeviceNotFound, StreamNotFound). */
  notFound: 4,
  /** The device is not connected to IoT Hub, or did not answer in time. */
  deviceUnavailable: 5,
  /** The device rejected the stream (its reason is printed). */
  rejected: 6,
  /** The stream or channel ended abnormally after it opened (relay, tunnel or target failure). */
  streamFailed: 7,
  /** `echo --bytes` received something other than what it sent. */
  verifyFailed: 8,
  /** The control plane could not be reached, or answered 5xx / 429. */
  unavailable: 9,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit code for an error from the SDK (StreamsError / TunnelError / RelayError) or the CLI. */
export function exitCodeFor(err: unknown): ExitCode {
  if (!(err instanceof Error)) return EXIT.error;
  if (err.name === "UsageError" || err.name === "TypeError" || err.name === "RangeError") return EXIT.usage;
  const { code, statusCode } = err as { code?: string; statusCode?: number };
  if (code === "InvalidConnectionString") return EXIT.usage;
  if (statusCode === 401 || statusCode === 403) {
    return err.name === "StreamsError" && !code?.startsWith("Relay") ? EXIT.auth : EXIT.streamFailed;
  }
  if (code === "DeviceNotOnline" || code === "DeviceTimeout") return EXIT.deviceUnavailable;
  // The device SDK's errors (azure-iot-common) when the agent connects to IoT Hub.
  if (err.name === "UnauthorizedError") return EXIT.auth;
  if (err.name === "NotConnectedError" || err.name === "ServiceUnavailableError")
    return EXIT.deviceUnavailable;
  if (code === "StreamRejected") return EXIT.rejected;
  if (statusCode === 404) return EXIT.notFound;
  if (
    code === "ServiceUnreachable" ||
    (statusCode !== undefined && (statusCode >= 500 || statusCode === 429))
  ) {
    return EXIT.unavailable;
  }
  if (statusCode !== undefined && statusCode >= 400) return EXIT.usage;
  if (err.name === "TunnelError" || err.name === "RelayError" || err.name === "StreamsError")
    return EXIT.streamFailed;
  return EXIT.error;
}
