/**
 * HS256 JWTs as Web PubSub uses them: the HMAC key is the UTF-8 bytes of the access key string.
 * Synchronous on node:crypto, so the upgrade and REST paths decide before any await; the surface
 * is one algorithm, and audiences compare as URLs (case and escaping), which a generic verifier
 * does not do. The control plane's own tokens go through jose (shared/auth).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export type JwtClaims = Record<string, unknown>;

export class JwtError extends Error {
  override readonly name = "JwtError";
}

function b64url(input: Buffer | string): string {
  return Buffer.from(input).toString("base64url");
}

export function signHs256(claims: JwtClaims, key: string): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", Buffer.from(key, "utf8")).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

/** URL audiences compare as URLs: `'` and `%27` are the same query, case does not matter. */
function canonicalAudience(aud: string): string {
  try {
    return new URL(aud).href.toLowerCase();
  } catch {
    return aud.toLowerCase();
  }
}

export interface VerifyOptions {
  /** Accepted audiences, compared case-insensitively. */
  audiences: readonly string[];
  clockSkewSeconds: number;
  nowSeconds?: number;
}

/** Verifies signature, `exp` (required), `nbf` and `aud`; returns the claims. */
export function verifyHs256(token: string, key: string, options: VerifyOptions): JwtClaims {
  const parts = token.split(".");
  if (parts.length !== 3) throw new JwtError("token is not a JWT");
  const [head, body, sig] = parts as [string, string, string];
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(head, "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch {
    throw new JwtError("token is not valid base64url JSON");
  }
  if (!header || typeof header !== "object" || (header as JwtClaims).alg !== "HS256") {
    throw new JwtError("token algorithm must be HS256");
  }
  const expected = createHmac("sha256", Buffer.from(key, "utf8")).update(`${head}.${body}`).digest();
  const given = Buffer.from(sig, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new JwtError("token signature is invalid");
  }
  if (!claims || typeof claims !== "object" || Array.isArray(claims))
    throw new JwtError("token claims invalid");
  const c = claims as JwtClaims;
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (typeof c.exp !== "number") throw new JwtError("token has no exp claim");
  if (c.exp + options.clockSkewSeconds < now) throw new JwtError("token has expired");
  if (typeof c.nbf === "number" && c.nbf - options.clockSkewSeconds > now) {
    throw new JwtError("token is not yet valid");
  }
  const auds = Array.isArray(c.aud) ? c.aud : [c.aud];
  const accepted = new Set(options.audiences.map(canonicalAudience));
  if (!auds.some((a) => typeof a === "string" && accepted.has(canonicalAudience(a)))) {
    throw new JwtError("token audience does not match");
  }
  return c;
}
