/**
 * IoT Hub's direct-method limits, shared by the control plane's adapter (which refuses a call the
 * hub would refuse, before spending a round trip) and the emulator (which answers 400 like the hub).
 */
export const DIRECT_METHOD_LIMITS = {
  maxPayloadBytes: 128 * 1024,
  responseTimeoutInSeconds: { min: 5, max: 300, default: 30 },
  connectTimeoutInSeconds: { min: 0, max: 300, default: 0 },
  maxMethodNameLength: 128,
} as const;

export interface DirectMethodParamsLike {
  methodName?: unknown;
  payload?: unknown;
  responseTimeoutInSeconds?: unknown;
  connectTimeoutInSeconds?: unknown;
}

function checkRange(name: string, value: unknown, range: { min: number; max: number }): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < range.min || value > range.max) {
    return `${name} must be an integer from ${range.min} to ${range.max}.`;
  }
  return undefined;
}

/** Byte size of the payload as the hub counts it: its JSON text. Throws on non-JSON values. */
export function payloadBytes(payload: unknown): number {
  const text = JSON.stringify(payload ?? null) as string | undefined;
  if (text === undefined) throw new TypeError("payload is not JSON-serializable");
  return Buffer.byteLength(text, "utf8");
}

/** Returns why the parameters break IoT Hub's rules, or undefined when they are acceptable. */
export function checkDirectMethodParams(params: DirectMethodParamsLike): string | undefined {
  const { methodName } = params;
  if (typeof methodName !== "string" || methodName.length === 0) {
    return "methodName must be a non-empty string.";
  }
  if (methodName.length > DIRECT_METHOD_LIMITS.maxMethodNameLength) {
    return `methodName must be at most ${DIRECT_METHOD_LIMITS.maxMethodNameLength} characters.`;
  }
  // The name becomes one level of an MQTT topic on the device side.
  if (/[\s/+#]/.test(methodName) || [...methodName].some((c) => c.charCodeAt(0) < 0x20)) {
    return "methodName must not contain '/', '+', '#', whitespace or control characters.";
  }
  const rangeError =
    checkRange(
      "responseTimeoutInSeconds",
      params.responseTimeoutInSeconds,
      DIRECT_METHOD_LIMITS.responseTimeoutInSeconds,
    ) ??
    checkRange(
      "connectTimeoutInSeconds",
      params.connectTimeoutInSeconds,
      DIRECT_METHOD_LIMITS.connectTimeoutInSeconds,
    );
  if (rangeError) return rangeError;
  let size: number;
  try {
    size = payloadBytes(params.payload);
  } catch {
    return "payload must be JSON-serializable.";
  }
  if (size > DIRECT_METHOD_LIMITS.maxPayloadBytes) {
    return `payload is ${size} bytes; the limit is ${DIRECT_METHOD_LIMITS.maxPayloadBytes} bytes (128 KB).`;
  }
  return undefined;
}
