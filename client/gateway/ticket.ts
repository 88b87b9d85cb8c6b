/**
 * Gateway tickets: short-lived signed tokens that carry an end user's right to reach one target
 * (device, module, stream name). The website's backend mints them after its own login and access
 * check; the gateway accepts nothing else, so it never reaches a device on its own authority.
 *
 * A ticket is a compact JWT, HS256 over a shared secret of at least 32 bytes, with the protected
 * header `typ: "devicestream-ticket+jwt"` and the claims `aud: "devicestream-gateway"`, `dev`,
 * `mod` (when a module), `str`, `jti`, `iat`, `exp` (at most 300 s after `iat`). Any JWT library can
 * mint one (docs/gateway.md, "Tickets").
 */
import { createHmac, randomBytes } from "node:crypto";
import { escapeControl } from "../../common/text";
import { ID_RULE, STREAM_NAME_RULE, isLegalId, isLegalStreamName } from "../../common/ids";
import type { DeviceTarget } from "../sdk/service/http/agent";
import { labelFor } from "./hostname";

/** JWT claims as this module reads and writes them (jose's JWTPayload is assignable both ways). */
type JWTPayload = Record<string, unknown> & { iat?: number; exp?: number; jti?: string };

export const TICKET_TYPE = "devicestream-ticket+jwt";
export const GATEWAY_AUDIENCE = "devicestream-gateway";
export const DEFAULT_TICKET_TTL_SECONDS = 60;
export const MAX_TICKET_TTL_SECONDS = 300;
export const MIN_SECRET_BYTES = 32;
/** Longer than any token this module mints (~400 characters); a longer one is never parsed. */
export const MAX_TOKEN_LENGTH = 2048;
/** The path of the one-time login URL; the gateway never forwards it to a device. */
export const LOGIN_PATH = "/.devicestream/login";
/** Clock skew allowed between the website that mints tickets and the gateway. */
const CLOCK_TOLERANCE_SECONDS = 5;

/**
 * jose loads on the first ticket signed or checked: the service SDK's index exports these
 * functions, and the agent and `connect` (which load that index) must not pay for a JWT library.
 */
let jose: typeof import("jose") | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const loadJose = (): typeof import("jose") => (jose ??= require("jose") as typeof import("jose"));

export interface TicketOptions {
  /** Lifetime of the ticket: default 60, at most 300. */
  ttlSeconds?: number;
  /** The clock (ms since the epoch); tests only. */
  now?: () => number;
}

/** Refuses a secret too short for HS256 (RFC 7518 §3.2: a key of at least the hash size). */
export function checkSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.byteLength < MIN_SECRET_BYTES) {
    throw new RangeError(`the gateway secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
}

/**
 * The secret as configured in text (`DEVICESTREAM_GATEWAY_SECRET`): its UTF-8 bytes, at least 32.
 * Taken as is, not decoded, so that a website in any language signs with the same key by passing
 * the same string to its JWT library (which uses a string secret's UTF-8 bytes).
 */
export function gatewaySecretFromText(text: string): Uint8Array {
  const secret = new Uint8Array(Buffer.from(text, "utf8"));
  checkSecret(secret);
  return secret;
}

/** Refuses a target that no device could serve, before anything is signed for it. */
export function checkTarget(target: DeviceTarget): void {
  if (!isLegalId(target.deviceId)) throw new RangeError(`deviceId must be ${ID_RULE}`);
  if (target.moduleId !== undefined && !isLegalId(target.moduleId)) {
    throw new RangeError(`moduleId must be ${ID_RULE}`);
  }
  if (!isLegalStreamName(target.streamName)) throw new RangeError(`streamName must be ${STREAM_NAME_RULE}`);
}

/** The claims that name a target. */
export function targetClaims(target: DeviceTarget): { dev: string; mod?: string; str: string } {
  return {
    dev: target.deviceId,
    ...(target.moduleId !== undefined ? { mod: target.moduleId } : {}),
    str: target.streamName,
  };
}

/** The target named by verified claims, or undefined when they do not name a legal one. */
export function claimsTarget(claims: JWTPayload): DeviceTarget | undefined {
  const { dev, mod, str } = claims;
  if (typeof dev !== "string" || typeof str !== "string") return undefined;
  if (mod !== undefined && typeof mod !== "string") return undefined;
  const target: DeviceTarget = {
    deviceId: dev,
    streamName: str,
    ...(mod !== undefined ? { moduleId: mod } : {}),
  };
  try {
    checkTarget(target);
  } catch {
    return undefined;
  }
  return target;
}

/** Signs `claims` for `ttlSeconds` as a token of type `typ` (tickets and gateway sessions). */
export async function signToken(
  key: Uint8Array,
  typ: string,
  claims: JWTPayload,
  ttlSeconds: number,
  now: () => number = Date.now,
): Promise<string> {
  const iat = Math.floor(now() / 1000);
  return new (loadJose().SignJWT)(claims)
    .setProtectedHeader({ alg: "HS256", typ })
    .setAudience(GATEWAY_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds)
    .sign(key);
}

export type TokenCheck =
  | { ok: true; claims: JWTPayload & { iat: number; exp: number } }
  | { ok: false; expired: boolean; message: string };

/**
 * Verifies a token of type `typ` signed with `key`: HS256 only, the gateway audience, `iat` and
 * `exp` present, not expired, and no longer-lived than `maxTtlSeconds`. Never throws; jose's own
 * messages are not passed on (they may quote the token).
 */
export async function verifyToken(
  key: Uint8Array,
  typ: string,
  token: unknown,
  maxTtlSeconds: number,
  now: () => number = Date.now,
): Promise<TokenCheck> {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
    return { ok: false, expired: false, message: "the token is malformed" };
  }
  const { errors, jwtVerify } = loadJose();
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ["HS256"],
      typ,
      audience: GATEWAY_AUDIENCE,
      requiredClaims: ["iat", "exp"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(now()),
    });
    const { iat, exp } = payload;
    if (typeof iat !== "number" || typeof exp !== "number" || exp - iat > maxTtlSeconds) {
      return { ok: false, expired: false, message: `the token lives longer than ${maxTtlSeconds} s` };
    }
    return { ok: true, claims: { ...payload, iat, exp } };
  } catch (err) {
    if (err instanceof errors.JWTExpired)
      return { ok: false, expired: true, message: "the token has expired" };
    if (err instanceof errors.JWSSignatureVerificationFailed) {
      return { ok: false, expired: false, message: "the token's signature is invalid" };
    }
    return { ok: false, expired: false, message: "the token is malformed or not of the expected type" };
  }
}

/**
 * A ticket for `target`, valid `ttlSeconds` (default 60, at most 300). The website's backend calls
 * this once its own user may reach the target, and hands the result to the browser as a one-time
 * login URL (`gatewayLoginUrl`) or to a non-browser client as `Authorization: Bearer <ticket>`.
 */
export async function issueTicket(
  secret: Uint8Array,
  target: DeviceTarget,
  options: TicketOptions = {},
): Promise<string> {
  checkSecret(secret);
  checkTarget(target);
  const ttl = options.ttlSeconds ?? DEFAULT_TICKET_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TICKET_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds must be a whole number from 1 to ${MAX_TICKET_TTL_SECONDS}`);
  }
  const claims = { ...targetClaims(target), jti: randomBytes(16).toString("base64url") };
  return signToken(secret, TICKET_TYPE, claims, ttl, options.now);
}

export type TicketCheck =
  | { ok: true; target: DeviceTarget; id: string; expiresAt: number }
  | { ok: false; expired: boolean; message: string };

/** Verifies a ticket: signature, type, lifetime, a legal target and an id (`jti`). Never throws. */
export async function verifyTicket(
  secret: Uint8Array,
  ticket: unknown,
  now: () => number = Date.now,
): Promise<TicketCheck> {
  const check = await verifyToken(secret, TICKET_TYPE, ticket, MAX_TICKET_TTL_SECONDS, now);
  if (!check.ok) return check;
  const target = claimsTarget(check.claims);
  const id = check.claims.jti;
  if (!target || typeof id !== "string" || id.length < 16 || id.length > 64) {
    return { ok: false, expired: false, message: "the ticket does not name a legal target and id" };
  }
  return { ok: true, target, id, expiresAt: check.claims.exp };
}

/**
 * Whether a string has the shape of a gateway ticket (a compact JWS whose header says
 * `typ: "devicestream-ticket+jwt"`), without verifying it: the request side uses it to keep the
 * gateway's own `Authorization` from a device, whether the ticket is valid or not.
 */
export function looksLikeTicket(token: string): boolean {
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) {
    return false;
  }
  try {
    const header: unknown = JSON.parse(
      Buffer.from(token.slice(0, token.indexOf(".")), "base64url").toString(),
    );
    return typeof header === "object" && header !== null && (header as { typ?: unknown }).typ === TICKET_TYPE;
  } catch {
    return false;
  }
}

/** A key for another purpose derived from the secret, so that no token of one kind passes for another. */
export function deriveKey(secret: Uint8Array, purpose: string): Uint8Array {
  return createHmac("sha256", secret).update(`devicestream-gateway ${purpose} v1`).digest();
}

export interface GatewayBaseUrl {
  /** The gateway's base domain, e.g. `localhost` or `devices.example.com`. */
  baseDomain: string;
  /** Default `https`; `http` for local use. */
  scheme?: "http" | "https";
  /** Omitted when it is the scheme's default. */
  port?: number;
}

/**
 * The one-time login URL for `ticket`:
 * `<scheme>://<label>.<baseDomain>[:port]/.devicestream/login?ticket=…`. Opening it in a browser
 * exchanges the ticket for a session cookie of that host and redirects to the device's `/`.
 */
export function gatewayLoginUrl(baseUrl: GatewayBaseUrl, target: DeviceTarget, ticket: string): string {
  const scheme = baseUrl.scheme ?? "https";
  const domain = baseUrl.baseDomain.replace(/\.$/, "").toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(domain)) {
    throw new RangeError(`baseDomain '${escapeControl(domain.slice(0, 300))}' is not a DNS name`);
  }
  const port = baseUrl.port;
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new RangeError("port must be a whole number from 1 to 65535");
  }
  const url = new URL(`${scheme}://${labelFor(target)}.${domain}`);
  if (port !== undefined) url.port = String(port);
  url.pathname = LOGIN_PATH;
  url.searchParams.set("ticket", ticket);
  return url.toString();
}
