import type { Client, DeviceMethodParams } from "azure-iothub";
import { NoRetry } from "azure-iot-common";
import { parseIotHubErrorBody } from "./errorBody";
import { DIRECT_METHOD_LIMITS, checkDirectMethodParams } from "./limits";

export interface DirectMethodTarget {
  deviceId: string;
  moduleId?: string;
}

export interface DirectMethodRequest {
  methodName: string;
  payload: unknown;
  responseTimeoutInSeconds: number;
  connectTimeoutInSeconds?: number;
}

export interface DirectMethodResult {
  /** The status the device chose; a device-reported 500 is still a successful call. */
  status: number;
  payload: unknown;
}

export interface DirectMethodInvoker {
  invoke(
    target: DirectMethodTarget,
    request: DirectMethodRequest,
    options?: { abortSignal?: AbortSignal },
  ): Promise<DirectMethodResult>;
}

export type DirectMethodErrorKind =
  | "DeviceNotFound"
  | "ModuleNotFound"
  | "DeviceNotOnline"
  | "Timeout"
  | "Throttled"
  | "Unauthorized"
  | "Upstream";

/**
 * IoT Hub's codes for an identity that is not registered: 404001 DeviceNotFound and 404010
 * ModuleNotFound (the hub's error code list), numeric in direct-method bodies, named in registry ones.
 */
const NOT_REGISTERED: ReadonlyMap<string, "DeviceNotFound" | "ModuleNotFound"> = new Map([
  ["404001", "DeviceNotFound"],
  ["DeviceNotFound", "DeviceNotFound"],
  ["404010", "ModuleNotFound"],
  ["ModuleNotFound", "ModuleNotFound"],
]);

export class DirectMethodError extends Error {
  override readonly name = "DirectMethodError";
  readonly statusCode?: number;
  readonly iotHubErrorCode?: string;
  readonly retryAfterSeconds?: number;

  constructor(
    readonly kind: DirectMethodErrorKind,
    message: string,
    details: {
      statusCode?: number;
      iotHubErrorCode?: string;
      retryAfterSeconds?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.statusCode !== undefined) this.statusCode = details.statusCode;
    if (details.iotHubErrorCode !== undefined) this.iotHubErrorCode = details.iotHubErrorCode;
    if (details.retryAfterSeconds !== undefined) this.retryAfterSeconds = details.retryAfterSeconds;
  }
}

/** The shape of the errors azure-iothub's RestApiClient produces (`translateError`). */
interface SdkHttpError {
  name?: unknown;
  message?: unknown;
  response?: { statusCode?: unknown; headers?: Record<string, string | string[] | undefined> };
  responseBody?: unknown;
}

// @azure/identity's errors when a credential cannot produce a token.
const CREDENTIAL_ERRORS = new Set([
  "CredentialUnavailableError",
  "AuthenticationError",
  "AggregateAuthenticationError",
]);

function describe(target: DirectMethodTarget): string {
  return target.moduleId === undefined
    ? `device '${target.deviceId}'`
    : `module '${target.deviceId}/${target.moduleId}'`;
}

function retryAfter(headers: Record<string, string | string[] | undefined> | undefined): number | undefined {
  const raw = headers?.["retry-after"];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  return raw !== undefined && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Maps an azure-iothub failure to a DirectMethodError, deciding on the hub's error code in the body. */
export function toDirectMethodError(err: unknown, target: DirectMethodTarget): DirectMethodError {
  const e = (typeof err === "object" && err !== null ? err : {}) as SdkHttpError;
  const sdkMessage = typeof e.message === "string" ? e.message : String(err);
  const statusCode = typeof e.response?.statusCode === "number" ? e.response.statusCode : undefined;
  if (statusCode === undefined) {
    if (typeof e.name === "string" && CREDENTIAL_ERRORS.has(e.name)) {
      return new DirectMethodError("Unauthorized", `Could not get a token for IoT Hub: ${sdkMessage}`, {
        cause: err,
      });
    }
    return new DirectMethodError("Upstream", `IoT Hub could not be reached: ${sdkMessage}`, { cause: err });
  }
  const info = parseIotHubErrorBody(e.responseBody);
  const details = {
    statusCode,
    ...(info.code === undefined ? {} : { iotHubErrorCode: info.code }),
    cause: err,
  };
  const hubSays = info.message ? ` (IoT Hub: ${info.message})` : "";
  const who = describe(target);
  switch (statusCode) {
    case 404: {
      const missing = info.code === undefined ? undefined : NOT_REGISTERED.get(info.code);
      if (missing !== undefined) {
        return new DirectMethodError(missing, `The ${who} is not registered in IoT Hub${hubSays}.`, details);
      }
      return new DirectMethodError("DeviceNotOnline", `The ${who} is not online${hubSays}.`, details);
    }
    case 504:
      return new DirectMethodError("Timeout", `The ${who} did not answer in time${hubSays}.`, details);
    case 429:
      return new DirectMethodError("Throttled", `IoT Hub throttled the call${hubSays}.`, {
        ...details,
        ...(retryAfter(e.response?.headers) === undefined
          ? {}
          : { retryAfterSeconds: retryAfter(e.response?.headers) }),
      });
    case 401:
      return new DirectMethodError("Unauthorized", `IoT Hub refused our credentials${hubSays}.`, details);
    case 403:
      // 403002 is the daily message quota, which behaves like throttling for a caller.
      if (info.code === "403002") {
        return new DirectMethodError("Throttled", `IoT Hub quota exceeded${hubSays}.`, details);
      }
      return new DirectMethodError("Unauthorized", `IoT Hub denied the call${hubSays}.`, details);
    default:
      return new DirectMethodError("Upstream", `IoT Hub answered HTTP ${statusCode}${hubSays}.`, details);
  }
}

function toResult(body: unknown, target: DirectMethodTarget): DirectMethodResult {
  const record = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : undefined;
  if (!record || typeof record.status !== "number") {
    throw new DirectMethodError(
      "Upstream",
      `IoT Hub returned a malformed direct-method result for ${describe(target)}.`,
    );
  }
  return { status: record.status, payload: record.payload ?? null };
}

/** Settles with `work`, or rejects at `boundMs` (Timeout) or when the signal aborts (its reason). */
async function bounded<T>(
  work: Promise<T>,
  boundMs: number,
  target: DirectMethodTarget,
  signal: AbortSignal | undefined,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const limits = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(
        new DirectMethodError(
          "Timeout",
          `No answer from IoT Hub for ${describe(target)} within ${boundMs} ms.`,
        ),
      );
    }, boundMs);
    if (signal) {
      // The caller's own reason, as AbortSignal users expect (a DOMException "AbortError" by default).
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([work, limits]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Invokes direct methods through azure-iothub. The SDK retries for up to 240 s and never times a
 * request out itself, so this turns its retries off (callers own retry decisions) and bounds every
 * call at the hub's own timeouts plus `extraBoundMs`. On abort or our own bound the SDK's request
 * is left to finish in the background; the hub ends it by its own timeout.
 */
export class IotHubDirectMethodInvoker implements DirectMethodInvoker {
  private readonly extraBoundMs: number;

  constructor(
    private readonly client: Client,
    options: { extraBoundMs?: number } = {},
  ) {
    this.extraBoundMs = options.extraBoundMs ?? 5000;
    this.client.setRetryPolicy(new NoRetry());
  }

  async invoke(
    target: DirectMethodTarget,
    request: DirectMethodRequest,
    options: { abortSignal?: AbortSignal } = {},
  ): Promise<DirectMethodResult> {
    if (!target.deviceId || target.moduleId === "") {
      throw new TypeError("A direct-method target needs a non-empty deviceId (and moduleId, if given).");
    }
    const problem = checkDirectMethodParams(request);
    if (problem) throw new RangeError(problem);
    options.abortSignal?.throwIfAborted();
    const connectTimeoutInSeconds =
      request.connectTimeoutInSeconds ?? DIRECT_METHOD_LIMITS.connectTimeoutInSeconds.default;
    // A fresh object: the SDK fills in defaults on the params it is given.
    const params: DeviceMethodParams = {
      methodName: request.methodName,
      payload: request.payload ?? null,
      responseTimeoutInSeconds: request.responseTimeoutInSeconds,
      connectTimeoutInSeconds,
    };
    const boundMs = (request.responseTimeoutInSeconds + connectTimeoutInSeconds) * 1000 + this.extraBoundMs;
    const call =
      target.moduleId === undefined
        ? this.client.invokeDeviceMethod(target.deviceId, params)
        : this.client.invokeDeviceMethod(target.deviceId, target.moduleId, params);
    let body: unknown;
    try {
      const outcome = await bounded(call, boundMs, target, options.abortSignal);
      body = outcome.result as unknown;
    } catch (err) {
      if (err instanceof DirectMethodError || options.abortSignal?.aborted) throw err;
      throw toDirectMethodError(err, target);
    }
    return toResult(body, target);
  }
}
