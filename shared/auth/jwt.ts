import {
  jose,
  type JOSEError,
  type JWTClaimValidationFailed,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "./jose";
import { Errors } from "../errors";

/** Entra ID signs access tokens with RS256 only; anything else (none, HS256 with a public key) is refused. */
export const ENTRA_ALGORITHMS = ["RS256"];

export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";

/** Clock tolerance for exp/nbf, as Microsoft's own middleware allows (it uses 5 min; we are stricter). */
export const DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS = 60;

export interface EntraEndpointOptions {
  readonly tenantId: string;
  readonly authorityHost?: string | undefined;
  /** Overrides the JWKS address derived from the authority host. */
  readonly jwksUri?: string | undefined;
  /** Overrides both derived issuers. */
  readonly issuer?: string | undefined;
}

export interface EntraEndpoints {
  readonly jwksUri: string;
  readonly issuers: readonly string[];
}

/**
 * The tenant's signing-key set and token issuers: v1 tokens (`accessTokenAcceptedVersion` 1, the
 * default, and managed-identity tokens) come from sts.windows.net, v2 tokens from the authority.
 */
export function entraEndpoints(options: EntraEndpointOptions): EntraEndpoints {
  const authority = (options.authorityHost ?? DEFAULT_AUTHORITY_HOST).replace(/\/+$/, "");
  const tenant = options.tenantId;
  return {
    jwksUri: options.jwksUri ?? `${authority}/${tenant}/discovery/v2.0/keys`,
    issuers:
      options.issuer !== undefined
        ? [options.issuer]
        : [`https://sts.windows.net/${tenant}/`, `${authority}/${tenant}/v2.0`],
  };
}

/**
 * A cached remote key set: refetched at most every 30 s when a token names an unknown key (key
 * rollover), so forged key ids cannot make us hammer the endpoint.
 */
export function remoteJwks(jwksUri: string): JWTVerifyGetKey {
  return jose.createRemoteJWKSet(new URL(jwksUri), {
    timeoutDuration: 5_000,
    cooldownDuration: 30_000,
    cacheMaxAge: 10 * 60_000,
  });
}

export interface JwtVerifierOptions {
  /** Usually `remoteJwks(endpoints.jwksUri)`; one key set may be shared by several verifiers. */
  readonly keys: JWTVerifyGetKey;
  readonly issuers: readonly string[];
  readonly audiences: readonly string[];
  readonly clockToleranceSeconds?: number;
  /** Injectable clock for tests. */
  readonly now?: () => Date;
}

export type JwtVerification =
  { readonly ok: true; readonly claims: JWTPayload } | { readonly ok: false; readonly reason: string };

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Reasons we give for jose's failures; jose's own messages are never passed on. */
function rejection(err: JOSEError): string | undefined {
  switch (err.code) {
    case jose.errors.JWTExpired.code:
      return "token expired";
    case jose.errors.JWTClaimValidationFailed.code: {
      const { claim, reason } = err as JWTClaimValidationFailed;
      if (claim === "aud") return "token audience is not accepted";
      if (claim === "iss") return "token issuer is not accepted";
      if (claim === "nbf") return "token is not yet valid";
      if (reason === "missing") return `token has no '${claim}' claim`;
      return `token claim '${claim}' is invalid`;
    }
    case jose.errors.JOSEAlgNotAllowed.code:
      return `token algorithm is not accepted (only ${ENTRA_ALGORITHMS.join(", ")})`;
    case jose.errors.JWSSignatureVerificationFailed.code:
      return "token signature is invalid";
    case jose.errors.JWKSNoMatchingKey.code:
      return "token is not signed by a key of the tenant";
    case jose.errors.JWKSMultipleMatchingKeys.code:
      return "token does not name its signing key (kid)";
    case jose.errors.JWSInvalid.code:
    case jose.errors.JWTInvalid.code:
    case jose.errors.JOSENotSupported.code:
      return "malformed token";
    default:
      // Key-set fetch failures (timeout, non-200, bad JSON, unusable key): not the caller's fault.
      return undefined;
  }
}

/** Validates a bearer JWT: signature against the key set, RS256, issuer, audience, expiry. */
export class JwtVerifier {
  constructor(private readonly options: JwtVerifierOptions) {}

  /**
   * Resolves with the claims or a reason for a 401. Throws `Errors.upstreamUnavailable` (503) only
   * when the signing keys cannot be fetched: a token we cannot check is not a forged one.
   */
  async verify(token: string): Promise<JwtVerification> {
    if (!COMPACT_JWS.test(token)) return { ok: false, reason: "malformed token" };
    const { keys, issuers, audiences, clockToleranceSeconds, now } = this.options;
    try {
      const { payload } = await jose.jwtVerify(token, keys, {
        algorithms: ENTRA_ALGORITHMS,
        issuer: [...issuers],
        audience: [...audiences],
        requiredClaims: ["exp"],
        clockTolerance: clockToleranceSeconds ?? DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS,
        ...(now ? { currentDate: now() } : {}),
      });
      return { ok: true, claims: payload };
    } catch (err) {
      const reason = err instanceof jose.errors.JOSEError ? rejection(err) : undefined;
      if (reason !== undefined) return { ok: false, reason };
      throw Errors.upstreamUnavailable("The Entra ID signing keys cannot be fetched; try again later.");
    }
  }
}

/** A string claim, or undefined when absent or not a non-empty string. */
export function stringClaim(claims: JWTPayload, name: string): string | undefined {
  const value = claims[name];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** One cached remote key set per address, so service and relay-event verifiers share a fetch. */
export class KeySets {
  private readonly sets = new Map<string, JWTVerifyGetKey>();

  get(jwksUri: string): JWTVerifyGetKey {
    let keys = this.sets.get(jwksUri);
    if (keys === undefined) {
      keys = remoteJwks(jwksUri);
      this.sets.set(jwksUri, keys);
    }
    return keys;
  }
}
