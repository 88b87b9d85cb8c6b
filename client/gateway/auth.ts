/**
 * Who may reach a device through the gateway. The gateway has its own credential to the control
 * plane, so without this it would open any device for anyone (a confused deputy). Each request must
 * carry the end user's right to one target, granted by the website's backend as a ticket
 * (./ticket.ts): exchanged once, on the device's own host, for a session cookie bound to that host's
 * label (browsers), or sent as `Authorization: Bearer <ticket>` (other clients).
 */
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { TLSSocket } from "node:tls";
import type { DeviceTarget } from "../sdk/service/http/agent";
import { labelFor } from "./hostname";
import { DEFAULT_COOKIE_NAME, bearerToken, cookieValues, crossOriginRefusal } from "./isolation";
import {
  LOGIN_PATH,
  checkSecret,
  claimsTarget,
  deriveKey,
  looksLikeTicket,
  signToken,
  targetClaims,
  verifyTicket,
  verifyToken,
} from "./ticket";

export type AuthResult =
  | { kind: "allow"; target: DeviceTarget }
  | { kind: "login"; status: 302; headers: OutgoingHttpHeaders }
  | { kind: "deny"; status: 401 | 403; code: string; message: string };

export interface GatewayAuthOptions {
  /** The secret tickets are signed with (at least 32 bytes), shared with the website's backend. */
  secret: Uint8Array;
  /** The session cookie's name; default `devicestream_session`. */
  cookieName?: string;
  /** How long a login lasts; default 3600, from 60 to 86400. */
  sessionTtlSeconds?: number;
  /**
   * Whether the session cookie is `Secure`. Default: when the request came over TLS. Set it when a
   * TLS-terminating proxy is in front of the gateway.
   */
  secureCookies?: boolean;
  /** The clock (ms since the epoch); tests only. */
  now?: () => number;
}

export interface GatewayAuth {
  /** The session cookie's name (give it to toDeviceHeaders / fromDeviceHeaders). */
  readonly cookieName: string;
  /** Never throws: every failure is a deny. */
  authenticate(req: IncomingMessage, label: string): Promise<AuthResult>;
}

export const DEFAULT_SESSION_TTL_SECONDS = 3600;
export const MAX_SESSION_TTL_SECONDS = 86400;
const SESSION_TYPE = "devicestream-session+jwt";
/** RFC 6265 cookie-name token. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/;
/** Cookies of the gateway's name that are tried (a page can add look-alikes with other paths). */
const MAX_SESSION_COOKIES = 8;
/** Longer request targets are not parsed for the login path (Node allows 16 KB of headers). */
const MAX_URL_LENGTH = 8192;
/** How often used ticket ids whose ticket has expired are forgotten. */
const SWEEP_INTERVAL_MS = 10_000;

const deny = (status: 401 | 403, code: string, message: string): AuthResult => ({
  kind: "deny",
  status,
  code,
  message,
});

/** The request's path and query (origin-form, or absolute-form as a client may send), if any. */
function pathAndQuery(url: string | undefined): { path: string; query: string } | undefined {
  if (typeof url !== "string" || url.length > MAX_URL_LENGTH) return undefined;
  if (!url.startsWith("/")) {
    try {
      const parsed = new URL(url);
      return { path: parsed.pathname, query: parsed.search.slice(1) };
    } catch {
      return undefined;
    }
  }
  const q = url.indexOf("?");
  return q < 0 ? { path: url, query: "" } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

export function createGatewayAuth(options: GatewayAuthOptions): GatewayAuth {
  checkSecret(options.secret);
  const secret = Uint8Array.from(options.secret);
  const sessionKey = deriveKey(secret, "session");
  const cookieName = options.cookieName ?? DEFAULT_COOKIE_NAME;
  if (!COOKIE_NAME.test(cookieName)) throw new RangeError("cookieName must be 1-64 cookie-name characters");
  const sessionTtl = options.sessionTtlSeconds ?? DEFAULT_SESSION_TTL_SECONDS;
  if (!Number.isInteger(sessionTtl) || sessionTtl < 60 || sessionTtl > MAX_SESSION_TTL_SECONDS) {
    throw new RangeError(`sessionTtlSeconds must be a whole number from 60 to ${MAX_SESSION_TTL_SECONDS}`);
  }
  const now = options.now ?? Date.now;
  /** Ids of tickets exchanged at the login path, with their expiry (s): each logs in once. */
  const used = new Map<string, number>();
  let lastSweep = now();

  function forgetExpired(): void {
    if (now() - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = now();
    // A little past expiry: verification allows that much clock skew.
    const horizon = Math.floor(lastSweep / 1000) - 60;
    for (const [id, exp] of used) if (exp < horizon) used.delete(id);
  }

  /** A ticket presented at `label`: valid, for this host, and not already exchanged for a login. */
  async function checkTicket(ticket: string, label: string) {
    const check = await verifyTicket(secret, ticket, now);
    if (!check.ok) {
      return deny(
        403,
        check.expired ? "TicketExpired" : "InvalidTicket",
        `The ticket is refused: ${check.message}.`,
      );
    }
    if (labelFor(check.target) !== label) {
      return deny(
        403,
        "TicketForAnotherHost",
        "The ticket is for another device or stream name than this host's.",
      );
    }
    if (used.has(check.id)) {
      return deny(
        403,
        "TicketUsed",
        "The ticket has already been used to log in; ask the website for a new one.",
      );
    }
    return check;
  }

  async function login(req: IncomingMessage, label: string, query: string): Promise<AuthResult> {
    const refusal = crossOriginRefusal(req.headers, req.method);
    if (refusal) return deny(403, "CrossOriginRequest", `Login refused: ${refusal}.`);
    const ticket = new URLSearchParams(query).get("ticket");
    if (!ticket) return deny(401, "TicketRequired", `${LOGIN_PATH} needs ?ticket=<ticket from the website>.`);
    const check = await checkTicket(ticket, label);
    if ("kind" in check) return check;
    forgetExpired();
    used.set(check.id, check.expiresAt);
    const session = await signToken(
      sessionKey,
      SESSION_TYPE,
      { lbl: label, ...targetClaims(check.target) },
      sessionTtl,
      now,
    );
    const secure = options.secureCookies ?? Boolean((req.socket as TLSSocket | undefined)?.encrypted);
    // No Domain: a host-only cookie, sent to this device's host and no other.
    const cookie = `${cookieName}=${session}; Path=/; Max-Age=${sessionTtl}; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`;
    return {
      kind: "login",
      status: 302,
      headers: {
        "set-cookie": [cookie],
        location: "/",
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
      },
    };
  }

  async function bearer(ticket: string, label: string): Promise<AuthResult> {
    const check = await checkTicket(ticket, label);
    return "kind" in check ? check : { kind: "allow", target: check.target };
  }

  async function session(req: IncomingMessage, label: string, tokens: string[]): Promise<AuthResult> {
    const refusal = crossOriginRefusal(req.headers, req.method);
    if (refusal) return deny(403, "CrossOriginRequest", `Refused: ${refusal}.`);
    let otherHost = false;
    let expired = false;
    for (const token of tokens.slice(0, MAX_SESSION_COOKIES)) {
      const check = await verifyToken(sessionKey, SESSION_TYPE, token, MAX_SESSION_TTL_SECONDS, now);
      if (!check.ok) {
        expired ||= check.expired;
        continue;
      }
      const target = claimsTarget(check.claims);
      if (target && check.claims.lbl === label && labelFor(target) === label)
        return { kind: "allow", target };
      otherHost = true;
    }
    if (otherHost) return deny(403, "SessionForAnotherHost", "The session is for another device's host.");
    if (expired)
      return deny(401, "SessionExpired", "The session has expired; open the device from the website again.");
    return deny(
      403,
      "InvalidSession",
      "The session cookie is not valid; open the device from the website again.",
    );
  }

  async function authenticate(req: IncomingMessage, label: string): Promise<AuthResult> {
    const target = pathAndQuery(req.url);
    if (target?.path === LOGIN_PATH) return login(req, label, target.query);
    const token = bearerToken(req.headers);
    // Another Authorization (Basic, or a bearer token that is no ticket) is the device's own.
    if (token && looksLikeTicket(token)) return bearer(token, label);
    const tokens = cookieValues(req.headers, cookieName);
    if (tokens.length > 0) return session(req, label, tokens);
    return deny(
      401,
      "LoginRequired",
      "Open this device from the website (its one-time login URL), or send Authorization: Bearer <ticket>.",
    );
  }

  return {
    cookieName,
    async authenticate(req, label) {
      try {
        return await authenticate(req, label);
      } catch {
        return deny(403, "Forbidden", "The request's credentials could not be checked.");
      }
    },
  };
}
