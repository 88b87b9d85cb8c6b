/**
 * What the gateway answers when it cannot proxy: one status and Azure-style body per cause
 * (docs/gateway.md, "Statuses"). A browser user sees the body, so the message names the cause in
 * words; the code is the SDK's where one applies, so a script can branch on it.
 */
import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_CODES } from "node:http";
import { safeJson } from "../../common/text";
import type { DeviceTarget } from "../sdk/service";

export interface GatewayFailure {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/** Seconds a client is told to wait when the device or the control plane has no room (503). */
export const RETRY_AFTER_SECONDS = 5;

/** A device's reason is its own text: bounded before it reaches the user. */
const MAX_REASON = 200;

const TIMEOUTS = new Set(["DeviceTimeout", "HandshakeTimeout", "RelayTimeout", "KeepaliveTimeout"]);
const CAPACITY = new Set(["TooManyStreams", "Throttled", "ChannelLimit"]);
const REJECTED = new Set(["StreamRejected", "UnsupportedOfferVersion", "Refused", "TargetUnavailable"]);

export function describeTarget(t: DeviceTarget): string {
  return `device '${t.deviceId}'${t.moduleId !== undefined ? ` module '${t.moduleId}'` : ""} stream '${t.streamName}'`;
}

/** The failure for an error from opening a channel to `target` or from the request over it. */
export function failureFor(err: unknown, target: DeviceTarget): GatewayFailure {
  const code = typeof (err as { code?: unknown })?.code === "string" ? (err as { code: string }).code : "";
  const who = describeTarget(target);
  if (code === "DeviceNotOnline")
    return { status: 502, code, message: `The ${who} cannot be reached: the device is not connected.` };
  if (code === "DeviceNotFound" || code === "ModuleNotFound")
    return { status: 502, code, message: `The ${who} cannot be reached: it is not registered.` };
  if (REJECTED.has(code)) {
    const reason = (err as { details?: { reason?: unknown } }).details?.reason;
    const why = typeof reason === "string" ? `: ${reason.slice(0, MAX_REASON)}` : ".";
    return { status: 502, code, message: `The ${who} refused the connection${why}` };
  }
  if (TIMEOUTS.has(code)) return { status: 504, code, message: `The ${who} did not answer in time.` };
  if (CAPACITY.has(code)) {
    return {
      status: 503,
      code,
      message: `The ${who} has no room for another connection now; retry later.`,
      headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
    };
  }
  // The connection ended under the request (the device or the relay ended the stream, the device's
  // web server closed the connection): the next request opens a new one.
  return {
    status: 502,
    code: code || "DeviceConnectionFailed",
    message: `The connection to the ${who} failed before it answered.`,
  };
}

function body(f: GatewayFailure): string {
  return safeJson({ error: { code: f.code, message: f.message } });
}

function headersOf(f: GatewayFailure, length: number): Record<string, string> {
  return {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": String(length),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "x-ms-error-code": f.code,
    ...f.headers,
  };
}

export function writeFailure(res: ServerResponse, f: GatewayFailure): void {
  const text = body(f);
  res.writeHead(f.status, headersOf(f, Buffer.byteLength(text)));
  res.end(text);
}

/** The same answer on a socket that asked for an upgrade (no ServerResponse exists for it). */
export function writeRawFailure(socket: Duplex, f: GatewayFailure): void {
  const text = body(f);
  const head = Object.entries({ ...headersOf(f, Buffer.byteLength(text)), Connection: "close" })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.end(`HTTP/1.1 ${f.status} ${STATUS_CODES[f.status] ?? ""}\r\n${head}\r\n${text}`);
}
