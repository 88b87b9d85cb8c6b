/**
 * The one error family of the control plane. Every failure that reaches a caller is an ApiError
 * built by a named constructor below; `shared/http/respond.ts` is the only place that turns it into
 * an HTTP response.
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const Errors = {
  badRequest: (code: string, message: string, details?: Record<string, unknown>) =>
    new ApiError(400, code, message, {}, details),
  invalidField: (field: string, message: string) =>
    new ApiError(400, "InvalidRequestBody", `${field}: ${message}`, {}, { field }),
  missingApiVersion: () =>
    new ApiError(
      400,
      "MissingApiVersionParameter",
      "The api-version query parameter (?api-version=) is required.",
    ),
  unsupportedApiVersion: (given: string, supported: readonly string[]) =>
    new ApiError(
      400,
      "UnsupportedApiVersion",
      `The api-version '${given}' is not supported. Supported versions: ${supported.join(", ")}.`,
    ),
  unauthenticated: (message: string) =>
    new ApiError(401, "Unauthenticated", message, { "WWW-Authenticate": "Bearer, SharedAccessSignature" }),
  forbidden: (message: string) => new ApiError(403, "Forbidden", message),
  notFound: (code: string, message: string) => new ApiError(404, code, message),
  conflict: (code: string, message: string, details?: Record<string, unknown>) =>
    new ApiError(409, code, message, {}, details),
  payloadTooLarge: (message: string) => new ApiError(413, "RequestBodyTooLarge", message),
  unsupportedMediaType: (message: string) => new ApiError(415, "UnsupportedMediaType", message),
  tooManyStreams: (message: string, retryAfterSeconds: number) =>
    new ApiError(429, "TooManyStreams", message, { "Retry-After": String(retryAfterSeconds) }),
  throttled: (message: string, retryAfterSeconds: number) =>
    new ApiError(429, "Throttled", message, { "Retry-After": String(retryAfterSeconds) }),
  internal: (message = "An internal error occurred.") => new ApiError(500, "InternalServerError", message),
  /** The device answered, but with something the control plane cannot use or record. */
  invalidDeviceResponse: (message: string) => new ApiError(502, "InvalidDeviceResponse", message),
  misconfigured: (problems: string[]) =>
    new ApiError(503, "ConfigurationError", `The service is misconfigured: ${problems.join("; ")}`),
  upstreamUnavailable: (message: string) => new ApiError(503, "ServiceUnavailable", message),
  /** An Azure service refused the control plane's own credential: a deployment problem, not the caller's. */
  upstreamAuthorization: (service: string, status: number) =>
    new ApiError(
      503,
      "UpstreamAuthorizationFailed",
      `${service} refused the control plane's credential (${status}): check the app identity's role ` +
        "assignments (docs/deploy.md, 'Who can deploy'); new assignments can take minutes to apply.",
    ),
  deviceTimeout: (message: string) => new ApiError(504, "DeviceTimeout", message),
} as const;

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}
