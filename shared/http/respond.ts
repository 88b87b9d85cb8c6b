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
  return errorResponse(upstreamRefusal(err) ?? Errors.internal());
}

/** The Azure SDK packages the control plane calls through, by their user-agent prefix. */
const SERVICES: ReadonlyArray<[string, string]> = [
  ["azsdk-js-web-pubsub", "Web PubSub"],
  ["azsdk-js-data-tables", "Table Storage"],
];

/**
 * A 401/403 from an Azure SDK call (core-rest-pipeline's RestError) means the control plane's own
 * identity lacks a role: said plainly, with the service's name only. The service's message stays in
 * the log: it may name principals and resources.
 */
function upstreamRefusal(err: unknown) {
  if (!(err instanceof Error) || err.name !== "RestError") return undefined;
  const { statusCode, request } = err as {
    statusCode?: unknown;
    request?: { headers?: { get?: (name: string) => string | undefined } };
  };
  if (statusCode !== 401 && statusCode !== 403) return undefined;
  const agent = request?.headers?.get?.("user-agent") ?? "";
  const service = SERVICES.find(([prefix]) => agent.includes(prefix))?.[1] ?? "An Azure service";
  return Errors.upstreamAuthorization(service, statusCode);
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
    jsonBody: body,
  };
}
