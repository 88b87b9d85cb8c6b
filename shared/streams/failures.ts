/**
 * How a handshake that failed becomes a record's close code and an API error: the direct method's
 * failures classified, and one table from close code to the caller's error for every path.
 */
import { OFFER_VERSION } from "../../common/offer";
import { type ApiError, Errors } from "../errors";
import { DirectMethodError } from "../iothub";
import type { CloseCode, StreamRecord } from "./model";
import type { HandshakeFailure } from "./transitions";

const THROTTLED_RETRY_SECONDS = 10;

export interface SignalFailure {
  state: HandshakeFailure;
  code: CloseCode;
  message: string;
}

/** Anything that is not a classified direct-method error counts as an upstream failure. */
export function classifySignalError(err: unknown): SignalFailure {
  const kind = err instanceof DirectMethodError ? err.kind : "Upstream";
  const detail = err instanceof Error ? err.message : String(err);
  switch (kind) {
    case "DeviceNotFound":
      return { state: "Failed", code: "DeviceNotFound", message: "the device is not registered in IoT Hub" };
    case "ModuleNotFound":
      return { state: "Failed", code: "ModuleNotFound", message: "the module is not registered in IoT Hub" };
    case "DeviceNotOnline":
      return {
        state: "DeviceOffline",
        code: "DeviceNotOnline",
        message: "the device is not connected to IoT Hub",
      };
    case "Timeout":
      return { state: "TimedOut", code: "DeviceTimeout", message: "the device did not answer in time" };
    case "Throttled":
      return { state: "Failed", code: "Throttled", message: "IoT Hub throttled the direct method" };
    default:
      return { state: "Failed", code: "UpstreamError", message: `IoT Hub failed: ${detail}` };
  }
}

export function versionMismatch(deviceVersions: number[] | undefined): string {
  const speaks = deviceVersions?.length ? deviceVersions.join(", ") : "an unknown version";
  return (
    `the device's agent does not speak stream offer version ${OFFER_VERSION} (it speaks ${speaks}); ` +
    "update the device agent or use a control plane of a matching version"
  );
}

/** The API error for a stream that ended before it could be used; one table for every path. */
export function errorForEnded(record: StreamRecord): ApiError {
  const reason = record.closeReason ?? record.state;
  switch (record.closeCode) {
    case "StreamRejected":
      return Errors.conflict("StreamRejected", `The device rejected the stream: ${reason}`, {
        reason,
        ...(record.responseData !== undefined ? { data: JSON.parse(record.responseData) as unknown } : {}),
      });
    case "UnsupportedOfferVersion":
      return Errors.conflict("UnsupportedOfferVersion", `The device cannot take the stream: ${reason}`, {
        offerVersion: OFFER_VERSION,
      });
    case "DeviceNotFound":
      return Errors.notFound("DeviceNotFound", `Device '${record.deviceId}' is not registered in IoT Hub.`);
    case "ModuleNotFound":
      return Errors.notFound(
        "ModuleNotFound",
        `Module '${record.moduleId ?? ""}' of device '${record.deviceId}' is not registered in IoT Hub.`,
      );
    case "DeviceNotOnline":
      return Errors.notFound("DeviceNotOnline", `Device '${record.deviceId}' is not connected to IoT Hub.`);
    case "DeviceTimeout":
      return Errors.deviceTimeout(`Device '${record.deviceId}' did not answer the stream request in time.`);
    case "Throttled":
      return Errors.throttled("IoT Hub is throttling direct methods; retry later.", THROTTLED_RETRY_SECONDS);
    case "UpstreamError":
      return Errors.upstreamUnavailable(`An upstream service failed: ${reason}`);
    case "InvalidDeviceResponse":
      return Errors.invalidDeviceResponse(
        `Device '${record.deviceId}' answered the stream request badly: ${reason}`,
      );
    default:
      return Errors.conflict("StreamClosed", `The stream ended during the handshake: ${reason}`, {
        state: record.state,
      });
  }
}
