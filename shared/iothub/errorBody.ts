/**
 * IoT Hub answers errors in two shapes, and azure-iothub's `translateError` understands only the
 * second, so a 404 from a direct method reaches the caller as a plain `Error("Not found")`:
 * - direct methods: `{"Message":"{\"errorCode\":404103,\"message\":\"...\",...}","ExceptionMessage":""}`
 * - registry: `{"Message":"ErrorCode:DeviceNotFound;Device ... not found","ExceptionMessage":"..."}`
 * This reads both, so callers decide on the hub's own code.
 */
export interface IotHubErrorInfo {
  /** Numeric codes as their decimal text ("404103"), named codes as given ("DeviceNotFound"). */
  code?: string;
  message?: string;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function fromInner(inner: Record<string, unknown>): IotHubErrorInfo {
  const code = inner.errorCode ?? inner.ErrorCode;
  const message = inner.message ?? inner.Message;
  return {
    ...(typeof code === "number" || typeof code === "string" ? { code: String(code) } : {}),
    ...(typeof message === "string" ? { message } : {}),
  };
}

export function parseIotHubErrorBody(body: unknown): IotHubErrorInfo {
  const outer = asRecord(typeof body === "string" ? tryParseJson(body) : body);
  if (!outer) return {};
  const text = outer.Message ?? outer.message;
  if (typeof text !== "string") return fromInner(outer);
  const inner = asRecord(tryParseJson(text));
  if (inner) return fromInner(inner);
  const named = /^ErrorCode:([^;]+);(.*)$/s.exec(text);
  if (named?.[1] !== undefined) return { code: named[1], message: named[2] ?? "" };
  return { message: text };
}
