import { createHmac, timingSafeEqual } from "node:crypto";
import { Errors } from "../errors";
import { parseAuthorizationHeader, type HeaderSource } from "./chain";
import { isBearer } from "./entra";
import { stringClaim, type JwtVerifier } from "./jwt";

/**
 * Authentication of Web PubSub's upstream calls to `/api/relay/events` (CloudEvents over HTTP):
 * the abuse-protection handshake on OPTIONS, and on POST either the `ce-signature` (access-key
 * mode) or the Entra token Web PubSub sends in keyless mode (event handler auth type
 * ManagedIdentity), pinned to Web PubSub's own identity.
 */

/** `sha256={hex(HMAC_SHA256(UTF8(accessKey), UTF8(connectionId)))}`, as Web PubSub signs. */
export function signConnectionId(accessKey: string, connectionId: string): string {
  return `sha256=${createHmac("sha256", accessKey).update(connectionId, "utf8").digest("hex")}`;
}

const SIGNATURE_VALUE = /^sha256=([0-9a-fA-F]{64})$/;
/** Web PubSub sends one value per key (primary, secondary); anything much longer is not from it. */
const MAX_SIGNATURE_HEADER = 1024;

export interface ManagedIdentityCheck {
  /** Configured with the tenant's key set and issuers and `RELAY_EVENTS_AUDIENCE`. */
  readonly verifier: JwtVerifier;
  /** Web PubSub's identity: its `oid` (object id) or `azp`/`appid` (client id) must equal this. */
  readonly principalId: string;
}

export interface RelayEventAuthenticatorOptions {
  /** Web PubSub host names allowed in `WebHook-Request-Origin` (compared case-insensitively). */
  readonly allowedOrigins: readonly string[];
  /** Web PubSub access keys (from its connection string); empty when it runs keyless. */
  readonly accessKeys: readonly string[];
  /** Accept Web PubSub's Entra token; absent means only signatures are accepted. */
  readonly managedIdentity?: ManagedIdentityCheck | undefined;
}

export type RelayCaller =
  { readonly method: "signature" } | { readonly method: "managedIdentity"; readonly principalId: string };

export class RelayEventAuthenticator {
  private readonly origins: ReadonlySet<string>;
  private readonly keys: readonly string[];
  private readonly managedIdentity: ManagedIdentityCheck | undefined;

  constructor(options: RelayEventAuthenticatorOptions) {
    this.origins = new Set(options.allowedOrigins.map((o) => o.toLowerCase()));
    this.keys = options.accessKeys.filter((k) => k.length > 0);
    this.managedIdentity = options.managedIdentity;
  }

  /**
   * CloudEvents abuse protection (OPTIONS). Returns the response headers that grant delivery, or
   * throws: 400 without `WebHook-Request-Origin`, 403 for an origin that is not ours. The sender
   * reads consent from `WebHook-Allowed-Origin` only, so a refusal simply omits it.
   */
  abuseProtection(headers: HeaderSource): Record<string, string> {
    const origin = headers.get("webhook-request-origin")?.trim();
    if (!origin) {
      throw Errors.badRequest("MissingHeader", "The WebHook-Request-Origin header is required.");
    }
    if (!this.origins.has(origin.toLowerCase())) {
      throw Errors.forbidden("This event handler does not accept deliveries from that origin.");
    }
    return { "WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", Allow: "POST, OPTIONS" };
  }

  /**
   * Authenticates a POST. Resolves with how the caller proved itself; throws
   * `Errors.unauthenticated` (401) otherwise, or `Errors.upstreamUnavailable` (503) when the Entra
   * signing keys cannot be fetched.
   */
  async authenticate(headers: HeaderSource): Promise<RelayCaller> {
    const reasons: string[] = [];
    const signature = headers.get("ce-signature");
    if (signature !== null) {
      const problem = this.checkSignature(signature, headers.get("ce-connectionid"));
      if (problem === undefined) return { method: "signature" };
      reasons.push(problem);
    }
    const authorization = headers.get("authorization");
    if (authorization !== null) {
      const result = await this.checkToken(authorization);
      if (typeof result !== "string") return result;
      reasons.push(result);
    }
    if (reasons.length === 0) reasons.push("missing ce-signature or Authorization header");
    throw Errors.unauthenticated(reasons.join("; "));
  }

  /** undefined when valid, else the reason. */
  private checkSignature(header: string, connectionId: string | null): string | undefined {
    if (this.keys.length === 0) return "ce-signature is not accepted: no Web PubSub access key is configured";
    if (!connectionId) return "ce-signature without ce-connectionId";
    if (header.length > MAX_SIGNATURE_HEADER) return "malformed ce-signature";
    const given: Buffer[] = [];
    for (const value of header.split(",")) {
      const hex = SIGNATURE_VALUE.exec(value.trim())?.[1];
      if (hex === undefined) return "malformed ce-signature";
      given.push(Buffer.from(hex, "hex"));
    }
    const expected = this.keys.map((k) => Buffer.from(signConnectionId(k, connectionId).slice(7), "hex"));
    // Compare every pair so that timing reveals neither which key nor which value matched.
    let matched = false;
    for (const g of given) for (const e of expected) matched = timingSafeEqual(g, e) || matched;
    return matched ? undefined : "ce-signature does not match";
  }

  /** The caller, or the reason it is refused. */
  private async checkToken(header: string): Promise<RelayCaller | string> {
    const mi = this.managedIdentity;
    if (mi === undefined) return "bearer tokens are not accepted: no Web PubSub identity is configured";
    const credentials = parseAuthorizationHeader(header);
    if (credentials === undefined || !isBearer(credentials.scheme)) {
      return "malformed Authorization header: expected 'Bearer <token>'";
    }
    const result = await mi.verifier.verify(credentials.credentials);
    if (!result.ok) return result.reason;
    const pinned = mi.principalId.toLowerCase();
    const ids = ["oid", "azp", "appid"].map((c) => stringClaim(result.claims, c)?.toLowerCase());
    if (!ids.includes(pinned)) return "token is not from the Web PubSub identity";
    return { method: "managedIdentity", principalId: mi.principalId };
  }
}
