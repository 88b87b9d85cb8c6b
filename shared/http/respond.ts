import type { HttpResponseInit } from "@azure/functions";
import { ApiError, Errors, isApiError } from "../errors";

/** Azure REST error body: `{"error":{"code","message"}}` plus `x-ms-error-code`. */
export function errorResponse(err: ApiError): HttpResponseInit {
  const error: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.details) Object.assign(error, err.details);
  return {
    status: err.statusCode,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "x-ms-error-code": err.code,
      ...err.headers,
    },
    jsonBody: { error },
  };
}

/**
 * The single mapping from thrown values to HTTP. Anything that is not an ApiError is a bug or an
 * upstream failure we did not classify: it becomes a 500 whose body reveals nothing internal.
 */
export function toErrorResponse(err: unknown, log?: (message: string) => void): HttpResponseInit {
  if (isApiError(err)) return errorResponse(err);
  log?.(`unhandled error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return errorResponse(Errors.internal());
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
    jsonBody: body,
  };
}
