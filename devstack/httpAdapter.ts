import {
  validateHeaderName,
  validateHeaderValue,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { ReadableStream } from "node:stream/web";
import { HttpRequest, HttpResponse, type Cookie, type HttpRequestInit } from "@azure/functions";
import { Errors } from "../shared/errors";

/**
 * Conversions between Node's http objects and the @azure/functions request/response model, done
 * the way the Functions worker does them so that handlers behave here as they do in Azure.
 */

/** A response fully computed and validated before anything goes on the wire. */
export interface WireResponse {
  status: number;
  headers: Map<string, string[]>;
  body: Buffer;
}

/**
 * The request body as the handler gets it with HTTP streaming on: unread, pulled as the handler
 * reads. `maxBytes` is the host's own limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT): a larger declared
 * `Content-Length` is refused before the handler runs, and a chunked body fails with the same 413
 * once it passes the limit. Routes apply their own, smaller limits (shared/http/body.ts).
 */
export function requestBody(req: IncomingMessage, maxBytes: number): AsyncIterable<Uint8Array> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  return limited(req, maxBytes);
}

async function* limited(req: IncomingMessage, maxBytes: number): AsyncGenerator<Uint8Array> {
  let total = 0;
  // Stopping early must not destroy the request: that would take the connection, and the 413
  // with it. The host closes the connection after answering instead.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) throw tooLarge(maxBytes);
    yield chunk;
  }
}

function tooLarge(maxBytes: number) {
  return Errors.payloadTooLarge(`The request body exceeds the limit of ${maxBytes} bytes.`);
}

export interface StreamingRequestInit {
  method: string;
  url: string;
  headers: Record<string, string>;
  params: Record<string, string>;
  body?: AsyncIterable<Uint8Array>;
}

/**
 * An HttpRequest built the way the worker builds it with HTTP streaming on: `createStreamRequest`
 * in @azure/functions (src/http/HttpRequest.ts) wraps the unread body in a fetch `Request`
 * (`duplex: "half"`) and passes it as `nativeRequest`, an init field the public typings leave out.
 * `request.body` is then a stream and `arrayBuffer()`/`json()` read it on demand.
 */
export function streamingRequest(init: StreamingRequestInit): HttpRequest {
  const { method, url, headers, params, body } = init;
  // GET and HEAD cannot carry a body in a fetch Request; the worker drops it too.
  const withBody = body !== undefined && method !== "GET" && method !== "HEAD";
  const nativeRequest = new Request(url, {
    method,
    headers,
    ...(withBody ? { body: ReadableStream.from(body), duplex: "half" } : {}),
  });
  // `query` is left to HttpRequest, which parses it from the URL and so keeps repeated keys.
  return new HttpRequest({ method, url, headers, params, nativeRequest } as HttpRequestInit);
}

/** Node joins repeated request headers itself; only set-cookie stays an array. */
export function flattenHeaders(headers: IncomingMessage["headers"]): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
}

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);
/** The host frames the buffered body itself; a handler's own framing headers would contradict it. */
const FRAMING_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

/**
 * Turns a handler's result into bytes and headers. Like the worker (without HTTP streaming), it
 * wraps an `HttpResponseInit` in a real `HttpResponse` and buffers the body, so `jsonBody`,
 * strings, bytes, streams and async iterables all serialise exactly as they would in Azure.
 */
export async function toWireResponse(result: unknown): Promise<WireResponse> {
  if (result === undefined || result === null)
    return { status: 204, headers: new Map(), body: Buffer.alloc(0) };
  if (typeof result !== "object") {
    throw new TypeError(`the handler returned a ${typeof result}; an HTTP response must be an object`);
  }
  const response = result instanceof HttpResponse ? result : new HttpResponse(result);
  const headers = new Map<string, string[]>();
  const add = (name: string, value: string) => {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    const key = name.toLowerCase();
    if (!FRAMING_HEADERS.has(key)) headers.set(key, [...(headers.get(key) ?? []), value]);
  };
  for (const [name, value] of response.headers) if (name !== "set-cookie") add(name, value);
  for (const cookie of response.headers.getSetCookie()) add("set-cookie", cookie);
  for (const cookie of response.cookies) add("set-cookie", serializeCookie(cookie));
  const body = NULL_BODY_STATUSES.has(response.status)
    ? Buffer.alloc(0)
    : Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers, body };
}

export function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`];
  if (cookie.domain) parts.push(`Domain=${cookie.domain}`);
  if (cookie.path) parts.push(`Path=${cookie.path}`);
  if (cookie.expires !== undefined) parts.push(`Expires=${new Date(cookie.expires).toUTCString()}`);
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${Math.trunc(cookie.maxAge)}`);
  if (cookie.secure) parts.push("Secure");
  if (cookie.httpOnly) parts.push("HttpOnly");
  if (cookie.sameSite) parts.push(`SameSite=${cookie.sameSite}`);
  return parts.join("; ");
}

export function sendWire(res: ServerResponse, wire: WireResponse, closeConnection: boolean): void {
  for (const [name, values] of wire.headers) res.setHeader(name, values.length === 1 ? values[0]! : values);
  if (!NULL_BODY_STATUSES.has(wire.status)) res.setHeader("content-length", wire.body.length);
  if (closeConnection) res.setHeader("connection", "close");
  res.writeHead(wire.status);
  res.end(wire.body);
}
