import { Errors } from "../errors";
import type { Principal } from "./principal";

/** `Authorization: <scheme> <credentials>`, split once. */
export interface Credentials {
  /** As sent; schemes compare case-insensitively (RFC 9110 §11.1). */
  readonly scheme: string;
  readonly credentials: string;
}

/**
 * An authenticator's answer, as in Azurite's IAuthenticator: yes (a principal), no (a reason,
 * 401), not my scheme (the next one is asked). `forbidden` is a yes-but: the identity is proven and
 * simply has no grant here, which is a 403, not a 401.
 */
export type AuthOutcome<P> =
  | { readonly kind: "authenticated"; readonly principal: P }
  | { readonly kind: "rejected"; readonly reason: string }
  | { readonly kind: "forbidden"; readonly reason: string }
  | { readonly kind: "notMine" };

export interface Authenticator<P = Principal> {
  /** The scheme it understands, for the "unsupported scheme" message. */
  readonly scheme: string;
  /**
   * Must not throw for any input a client can send; may throw an ApiError for an upstream
   * failure (e.g. the signing keys cannot be fetched).
   */
  authenticate(credentials: Credentials): Promise<AuthOutcome<P>>;
}

/** Anything with `get(name)`: the fetch `Headers` of `@azure/functions` HttpRequest, or a test's. */
export interface HeaderSource {
  get(name: string): string | null;
}

/** Longest Authorization header looked at; Entra tokens run to a few KB, SAS tokens to ~200 bytes. */
export const MAX_AUTHORIZATION_LENGTH = 16 * 1024;

const TOKEN68_HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +(\S+)$/;

/** Splits the header; undefined when it is not `<scheme> <one credential without spaces>`. */
export function parseAuthorizationHeader(value: string): Credentials | undefined {
  if (value.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  const match = TOKEN68_HEADER.exec(value.trim());
  if (!match?.[1] || !match[2]) return undefined;
  return { scheme: match[1], credentials: match[2] };
}

/** Only the scheme of a rejected header is ever repeated back, and only when it looks like one. */
function printableScheme(scheme: string): string | undefined {
  return /^[A-Za-z][A-Za-z0-9-]{0,31}$/.test(scheme) ? scheme : undefined;
}

/** Tries its authenticators in order; the first that does not answer "not my scheme" decides. */
export class AuthChain<P = Principal> {
  constructor(private readonly authenticators: readonly Authenticator<P>[]) {}

  /** Resolves with the principal, or throws `Errors.unauthenticated` (401) / `Errors.forbidden` (403). */
  async authenticate(headers: HeaderSource): Promise<P> {
    const header = headers.get("authorization");
    if (header === null || header.trim() === "") throw Errors.unauthenticated("missing Authorization header");
    const credentials = parseAuthorizationHeader(header);
    if (credentials === undefined) {
      throw Errors.unauthenticated("malformed Authorization header: expected '<scheme> <credentials>'");
    }
    for (const authenticator of this.authenticators) {
      const outcome = await authenticator.authenticate(credentials);
      switch (outcome.kind) {
        case "authenticated":
          return outcome.principal;
        case "rejected":
          throw Errors.unauthenticated(outcome.reason);
        case "forbidden":
          throw Errors.forbidden(outcome.reason);
        case "notMine":
          break;
      }
    }
    const supported = this.authenticators.map((a) => a.scheme).join(" or ") || "none configured";
    const scheme = printableScheme(credentials.scheme);
    throw Errors.unauthenticated(
      `${scheme === undefined ? "unsupported authorization scheme" : `authorization scheme '${scheme}' is not accepted`}; supported: ${supported}`,
    );
  }
}
