import { randomUUID } from "node:crypto";

/**
 * Errors in IoT Hub's own two body shapes, so azure-iothub maps them as it does for Azure:
 * - "registry": `{"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:..."}`; the
 *   SDK turns DeviceNotFound, DeviceAlreadyExists, ... into its named error classes.
 * - "method": `{"Message":"{\"errorCode\":404103,...}","ExceptionMessage":""}`, as direct methods
 *   answer; the SDK sees only the HTTP status, callers read the numeric code from the body.
 */
export class HubHttpError extends Error {
  override readonly name = "HubHttpError";
  constructor(
    readonly statusCode: number,
    /** Named code, also sent as the `iothub-errorcode` header. */
    readonly errorName: string,
    message: string,
    /** Numeric code for method-style bodies; registry-style when absent. */
    readonly numericCode?: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function errorBody(err: HubHttpError): string {
  const trackingId = randomUUID().replace(/-/g, "");
  const timestampUtc = new Date().toISOString();
  if (err.numericCode === undefined) {
    return JSON.stringify({
      Message: `ErrorCode:${err.errorName};${err.message}`,
      ExceptionMessage: `Tracking ID:${trackingId}-TimeStamp:${timestampUtc}`,
    });
  }
  const inner = { errorCode: err.numericCode, trackingId, message: err.message, timestampUtc };
  return JSON.stringify({ Message: JSON.stringify(inner), ExceptionMessage: "" });
}

export const HubErrors = {
  unauthorized: (reason: string) =>
    new HubHttpError(401, "IotHubUnauthorizedAccess", `Unauthorized: ${reason}`),
  /** A valid Entra token whose principal lacks the role assignment (RBAC). */
  forbidden: (reason: string) => new HubHttpError(403, "IotHubUnauthorizedAccess", `Unauthorized: ${reason}`),
  badRequest: (message: string) => new HubHttpError(400, "ArgumentInvalid", message),
  notFound: (message: string) => new HubHttpError(404, "DeviceNotFound", message),
  routeNotFound: (method: string, path: string) =>
    new HubHttpError(404, "NotImplemented", `The emulator does not implement ${method} ${path}.`),
  methodNotAllowed: (method: string, allowed: readonly string[]) =>
    new HubHttpError(405, "MethodNotAllowed", `${method} is not allowed here.`, undefined, {
      Allow: allowed.join(", "),
    }),
  alreadyExists: (message: string) => new HubHttpError(409, "DeviceAlreadyExists", message),
  preconditionFailed: (message: string) => new HubHttpError(412, "PreconditionFailed", message),
  tooLarge: (limit: number) =>
    new HubHttpError(413, "MessageTooLarge", `The request body is larger than ${limit} bytes.`),
  internal: () => new HubHttpError(500, "ServerError", "An internal error occurred in the emulator."),
  unavailable: () => new HubHttpError(503, "ServiceUnavailable", "The emulator is shutting down."),
  // Direct methods: the numeric codes callers decide on.
  methodArgument: (message: string) => new HubHttpError(400, "ArgumentInvalid", message, 400004),
  // Codes: learn.microsoft.com/rest/api/iothub/common-error-codes (404001, 404103); 404010 is
  // ErrorCode.ModuleNotFound of Microsoft.Azure.Devices (azure-iot-sdk-csharp).
  methodDeviceNotFound: () => new HubHttpError(404, "DeviceNotFound", "Device not found", 404001),
  methodModuleNotFound: () => new HubHttpError(404, "ModuleNotFound", "Module not found", 404010),
  methodDeviceNotOnline: (timeoutSeconds: number) =>
    new HubHttpError(
      404,
      "DeviceNotOnline",
      `Timed out waiting for device to connect (connectTimeoutInSeconds ${timeoutSeconds}).`,
      404103,
    ),
  methodTimeout: () =>
    new HubHttpError(504, "GatewayTimeout", "Timed out waiting for the response from device.", 504101),
  methodBadAnswer: (reason: string) => new HubHttpError(502, "BadDeviceResponse", reason, 502001),
  methodThrottled: (retryAfterSeconds: number) =>
    new HubHttpError(429, "ThrottlingException", "Direct-method rate limit exceeded.", 429001, {
      "Retry-After": String(retryAfterSeconds),
    }),
} as const;
