/**
 * Device isolation in the browser. Every device is served on its own origin
 * (`<label>.<baseDomain>`), and these rules keep the origins apart: the gateway's session cookie and
 * ticket never reach a device; a device cannot set a cookie for the base domain (which every device
 * host would receive), overwrite the gateway's cookie, or send the browser to another device's host;
 * and a request that another origin's page makes with the user's cookie is refused.
 *
 * Every header here comes from a browser or a device and is hostile: nothing throws, work is
 * bounded, and any name or value Node would refuse to send is dropped.
 */
import { validateHeaderName, validateHeaderValue } from "node:http";
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { looksLikeTicket } from "./ticket";

export type Proto = "http" | "https";

/** RFC 9110 §7.6.1, plus the ones older agents send. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
/** More headers than this is garbage (Node's own parser stops at 2000). */
const MAX_HEADERS = 2000;
/** A Connection header naming more headers than this is garbage; the rest are ignored. */
const MAX_CONNECTION_TOKENS = 32;
/** Browsers keep at most about 180 cookies per host; a longer list is not a browser's. */
const MAX_COOKIE_PAIRS = 256;
const MAX_ORIGIN_LENGTH = 300;

function values(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (typeof value === "number") return [String(value)];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

function first(headers: IncomingHttpHeaders, name: string): string | undefined {
  return values(headers[name])[0];
}

/** Whether Node would send this header as is. */
function sendable(name: string, value: string): boolean {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/** The lower-case header names a Connection header lists (they are hop-by-hop for this message). */
function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const tokens = values(headers.connection)
    .join(",")
    .split(",", MAX_CONNECTION_TOKENS)
    .map((t) => t.trim().toLowerCase());
  return new Set(tokens.filter(Boolean));
}

/** A WebSocket (or other) upgrade: the two hop-by-hop headers that must cross the proxy. */
function upgradeOf(headers: IncomingHttpHeaders, tokens: Set<string>): string | undefined {
  const upgrade = first(headers, "upgrade");
  return tokens.has("upgrade") && upgrade && sendable("upgrade", upgrade) ? upgrade : undefined;
}

/**
 * The end-to-end headers of a message: hop-by-hop headers, the headers its Connection names, the
 * names in `drop`, and anything Node would refuse to send are left out. An upgrade keeps
 * `Connection: Upgrade` and its `Upgrade`, which a proxy must pass on for the upgrade to happen.
 */
function endToEnd(headers: IncomingHttpHeaders, drop: ReadonlySet<string>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  if (typeof headers !== "object" || headers === null) return out;
  const tokens = connectionTokens(headers);
  let count = 0;
  for (const [rawName, value] of Object.entries(headers)) {
    if (++count > MAX_HEADERS) break;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || tokens.has(name) || drop.has(name)) continue;
    const kept = values(value).filter((v) => sendable(name, v));
    if (kept.length === 0) continue;
    out[name] = Array.isArray(value) ? kept : kept[0];
  }
  const upgrade = upgradeOf(headers, tokens);
  if (upgrade) {
    out.connection = "Upgrade";
    out.upgrade = upgrade;
  }
  return out;
}

/** `name=value` pairs of a Cookie header; a pair without `=` is a nameless cookie (name ""). */
function cookiePairs(header: string): { name: string; text: string }[] {
  return header
    .split(";", MAX_COOKIE_PAIRS)
    .map((piece) => piece.trim())
    .filter(Boolean)
    .map((text) => {
      const eq = text.indexOf("=");
      return { name: eq < 0 ? "" : text.slice(0, eq).trim(), text };
    });
}

/** The values of every cookie called `name` in the request (a page can add look-alikes with other paths). */
export function cookieValues(headers: IncomingHttpHeaders, name: string): string[] {
  return values(headers.cookie)
    .flatMap(cookiePairs)
    .filter((pair) => pair.name === name)
    .map((pair) => pair.text.slice(pair.text.indexOf("=") + 1).trim());
}

/** The bearer token of an Authorization header, when it is one. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(first(headers, "authorization") ?? "");
  return match?.[1];
}

export interface ToDeviceContext {
  /** The Host the client sent (`<label>.<baseDomain>[:port]`): the device's X-Forwarded-Host. */
  host: string;
  /** The client's address, appended to X-Forwarded-For. */
  remoteAddress: string;
  proto: Proto;
  /** What the device gets as Host. */
  hostHeader: string;
  /** The gateway's session cookie, never passed on. */
  cookieName: string;
}

/**
 * The request headers a device gets. Left out: the gateway's session cookie (the device's own
 * cookies stay, in their order), an `Authorization: Bearer` that carries a gateway ticket (any other
 * Authorization is the device's own and stays), hop-by-hop headers and `Forwarded` (the gateway
 * speaks X-Forwarded-*). Set: Host, X-Forwarded-For (the client's address appended, as nginx's
 * `$proxy_add_x_forwarded_for` does), X-Forwarded-Proto and X-Forwarded-Host.
 */
export function toDeviceHeaders(incoming: IncomingHttpHeaders, ctx: ToDeviceContext): OutgoingHttpHeaders {
  const out = endToEnd(
    incoming,
    new Set(["cookie", "authorization", "host", "forwarded", "x-forwarded-proto", "x-forwarded-host"]),
  );
  const cookies = values(incoming?.cookie)
    .flatMap(cookiePairs)
    .filter((pair) => pair.name !== ctx.cookieName)
    .map((pair) => pair.text)
    .join("; ");
  if (cookies && sendable("cookie", cookies)) out.cookie = cookies;
  const authorization = first(incoming ?? {}, "authorization");
  const bearer = bearerToken(incoming ?? {});
  if (authorization && !(bearer && looksLikeTicket(bearer)) && sendable("authorization", authorization)) {
    out.authorization = authorization;
  }
  const set = (name: string, value: string): void => {
    if (sendable(name, value)) out[name] = value;
    else delete out[name];
  };
  set("host", ctx.hostHeader);
  const forwardedFor = values(incoming?.["x-forwarded-for"]).join(", ");
  const address = typeof ctx.remoteAddress === "string" ? ctx.remoteAddress : "";
  set("x-forwarded-for", [forwardedFor, address].filter(Boolean).join(", "));
  set("x-forwarded-proto", ctx.proto);
  set("x-forwarded-host", ctx.host);
  return out;
}

/** The origin `proto://host` as a browser serialises it, or undefined when `host` is not a host. */
function ownOrigin(host: string, proto: Proto): string | undefined {
  if (typeof host !== "string" || !/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(host))
    return undefined;
  try {
    return new URL(`${proto === "https" ? "https" : "http"}://${host}`).origin;
  } catch {
    return undefined;
  }
}

/**
 * A Location (or Refresh URL) from a device, kept on the device's own origin: a relative one, or an
 * absolute one to this origin, stays as it is; an http(s) URL to any other host (another device's,
 * the device's own LAN address, the base domain) becomes the same path, query and fragment on this
 * host; anything else (`javascript:`, `data:`, unparsable) is dropped (undefined). Resolution is
 * the WHATWG URL parser's, the browser's own, so `//host`, `/\host` and tabs inside are caught.
 */
export function containLocation(location: string, ctx: { host: string; proto: Proto }): string | undefined {
  const origin = ownOrigin(ctx.host, ctx.proto);
  if (!origin || typeof location !== "string") return undefined;
  let url: URL;
  try {
    url = new URL(location, origin + "/");
  } catch {
    return undefined;
  }
  if (url.origin === origin) return location;
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  return origin + url.pathname + url.search + url.hash;
}

/** `Refresh: 5; url=…` with its URL contained as Location is; undefined when it cannot be. */
function containRefresh(refresh: string, ctx: { host: string; proto: Proto }): string | undefined {
  const match = /^\s*(\d{1,9}(?:\.\d*)?)\s*(?:[;,]\s*(?:url\s*=\s*)?(.*))?$/i.exec(refresh);
  if (!match) return undefined;
  const target = (match[2] ?? "").trim().replace(/^(['"])(.*)\1$/, "$2");
  if (!target) return match[1];
  const contained = containLocation(target, ctx);
  return contained === undefined ? undefined : `${match[1]}; url=${contained}`;
}

/**
 * A device's Set-Cookie made host-only: every `Domain` attribute removed, so the browser keeps the
 * cookie for this device's host alone. Undefined (dropped) when it would set the gateway's own cookie.
 */
export function containSetCookie(setCookie: string, cookieName: string): string | undefined {
  if (typeof setCookie !== "string") return undefined;
  const [pair = "", ...attributes] = setCookie.split(";", MAX_COOKIE_PAIRS);
  const eq = pair.indexOf("=");
  const name = eq < 0 ? "" : pair.slice(0, eq).trim();
  if (name === cookieName) return undefined;
  const kept = attributes.filter((a) => {
    const attr = a.split("=", 1)[0]!.trim().toLowerCase();
    return attr !== "domain";
  });
  return [pair, ...kept].join(";");
}

export interface FromDeviceContext {
  /** The Host the client sent: the device's origin is `proto://host`. */
  host: string;
  proto: Proto;
  /** The gateway's session cookie, which a device may not set; default `DEFAULT_COOKIE_NAME`. */
  cookieName?: string;
}

export const DEFAULT_COOKIE_NAME = "devicestream_session";

/**
 * The response headers the browser gets from a device: hop-by-hop headers left out, Set-Cookie
 * host-only and never the gateway's cookie (`containSetCookie`), Location and Refresh kept on the
 * device's origin (`containLocation`), and Clear-Site-Data dropped (its "cookies" clears every host
 * of the base domain, the other devices' sessions with it).
 */
export function fromDeviceHeaders(headers: IncomingHttpHeaders, ctx: FromDeviceContext): OutgoingHttpHeaders {
  const out = endToEnd(headers, new Set(["set-cookie", "location", "refresh", "clear-site-data"]));
  const cookieName = ctx.cookieName ?? DEFAULT_COOKIE_NAME;
  const cookies = values(headers?.["set-cookie"])
    .slice(0, MAX_COOKIE_PAIRS)
    .map((c) => containSetCookie(c, cookieName))
    .filter((c): c is string => c !== undefined && sendable("set-cookie", c));
  if (cookies.length > 0) out["set-cookie"] = cookies;
  for (const [name, contain] of [
    ["location", containLocation],
    ["refresh", containRefresh],
  ] as const) {
    const value = first(headers ?? {}, name);
    const contained = value === undefined ? undefined : contain(value, ctx);
    if (contained !== undefined && sendable(name, contained)) out[name] = contained;
  }
  return out;
}

/**
 * Whether a WebSocket upgrade may proceed: its Origin must be the device's own (`proto://host`), so
 * that no other device's page (nor any other site) can drive it with the user's cookie. A request
 * without Origin is not a browser's (browsers always send it on WebSocket) and is allowed; it still
 * needs a ticket or session. `null` (sandboxed frames, files) is refused.
 */
export function originAllowed(origin: string | undefined, host: string, proto: Proto): boolean {
  if (origin === undefined) return true;
  if (typeof origin !== "string" || origin.length > MAX_ORIGIN_LENGTH) return false;
  const own = ownOrigin(host, proto);
  return own !== undefined && origin.toLowerCase() === own;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Why a cookie-authenticated request must be refused as one made by another origin's page, or
 * undefined. Device hosts share a site (`a.localhost` and `b.localhost`, or two hosts of one base
 * domain), so SameSite=Lax alone would let one device's page send requests, with the user's cookie,
 * to another. With Fetch Metadata (every current browser) only requests from the device's own
 * origin, ones the user started (`none`), and top-level or frame GET navigations are allowed (the
 * "resource isolation policy" of web.dev/articles/fetch-metadata). Without it, an Origin header of
 * another host on an unsafe method is refused.
 */
export function crossOriginRefusal(
  headers: IncomingHttpHeaders,
  method: string | undefined,
): string | undefined {
  const site = first(headers, "sec-fetch-site")?.toLowerCase();
  if (site === undefined) {
    const origin = first(headers, "origin");
    if (origin === undefined || SAFE_METHODS.has(method ?? "")) return undefined;
    let originHost: string | undefined;
    try {
      originHost = origin.length <= MAX_ORIGIN_LENGTH ? new URL(origin).host : undefined;
    } catch {
      originHost = undefined;
    }
    const host = (first(headers, "host") ?? "").toLowerCase();
    return originHost === host ? undefined : "the request comes from another origin's page";
  }
  if (site === "same-origin" || site === "none") return undefined;
  const mode = first(headers, "sec-fetch-mode")?.toLowerCase();
  const dest = first(headers, "sec-fetch-dest")?.toLowerCase() ?? "";
  if (mode === "navigate" && method === "GET" && dest !== "object" && dest !== "embed") return undefined;
  return "the request comes from another origin's page (only navigations to a device may come from elsewhere)";
}
