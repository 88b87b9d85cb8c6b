import { timingSafeEqual } from "node:crypto";
import { MAX_SAS_TTL_SECONDS, SAS_SCHEME, decodeBase64Strict, sasSignature } from "../../common/sas";
import { compileGrant, type GrantSpec } from "./authorize";
import type { AuthOutcome, Authenticator, Credentials } from "./chain";
import type { Grant, SasPrincipal } from "./principal";

/**
 * Verification of control-plane SAS tokens. The token format and minting live in common/sas.ts,
 * which the clients share; they are re-exported here for the control plane's callers.
 */
export {
  SAS_SCHEME,
  decodeBase64Strict,
  encodeUriComponentStrict,
  mintSasToken,
  type MintSasTokenOptions,
} from "../../common/sas";

/** Default tolerance for clocks that run a little behind ours. */
export const DEFAULT_SAS_CLOCK_SKEW_SECONDS = 30;

/** Decoded-key floor: HMAC-SHA256 keys shorter than the hash add nothing but guessability. */
export const MIN_SAS_KEY_BYTES = 32;

export class SasFormatError extends Error {
  override readonly name = "SasFormatError";
}

export interface ParsedSas {
  /** `sr` exactly as received (URL-encoded): the signed string. */
  readonly signedResource: string;
  /** `sr` decoded. */
  readonly resource: string;
  readonly signature: Buffer;
  /** `se`, epoch seconds. */
  readonly expiry: number;
  /** `skn` decoded. */
  readonly policyName: string;
}

const FIELDS = ["sr", "sig", "se", "skn"] as const;
type Field = (typeof FIELDS)[number];

function isField(name: string): name is Field {
  return (FIELDS as readonly string[]).includes(name);
}

function decodeField(name: Field, value: string): string {
  try {
    const decoded = decodeURIComponent(value);
    if (decoded.length === 0) throw new SasFormatError(`'${name}' is empty`);
    return decoded;
  } catch (err) {
    if (err instanceof SasFormatError) throw err;
    throw new SasFormatError(`'${name}' is not valid URL encoding`);
  }
}

/** Parses the part after the scheme: `sr=…&sig=…&se=…&skn=…`, fields in any order, each exactly once. */
export function parseSasFields(text: string): ParsedSas {
  const raw = new Map<Field, string>();
  for (const part of text.split("&")) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!isField(name)) throw new SasFormatError("unexpected field (expected sr, sig, se, skn)");
    if (raw.has(name)) throw new SasFormatError(`field '${name}' appears twice`);
    if (eq < 0 || eq === part.length - 1) throw new SasFormatError(`field '${name}' has no value`);
    raw.set(name, part.slice(eq + 1));
  }
  const missing = FIELDS.filter((f) => !raw.has(f));
  if (missing.length > 0) throw new SasFormatError(`missing field(s): ${missing.join(", ")}`);
  const signedResource = raw.get("sr") as string;
  const se = raw.get("se") as string;
  // Canonical digits only (no sign, no leading zero), so that one token has exactly one spelling.
  if (!/^[1-9][0-9]{0,11}$/.test(se))
    throw new SasFormatError("'se' must be an expiry time in epoch seconds (digits, no leading zero)");
  const signature = decodeBase64Strict(decodeField("sig", raw.get("sig") as string));
  if (signature?.length !== 32) throw new SasFormatError("'sig' must be a base64 HMAC-SHA256");
  return {
    signedResource,
    resource: decodeField("sr", signedResource),
    signature,
    expiry: Number(se),
    policyName: decodeField("skn", raw.get("skn") as string),
  };
}

/** Parses a whole token, `SharedAccessSignature sr=…`. */
export function parseSasToken(token: string): ParsedSas {
  const space = token.indexOf(" ");
  if (space < 0 || token.slice(0, space).toLowerCase() !== SAS_SCHEME.toLowerCase()) {
    throw new SasFormatError(`expected '${SAS_SCHEME} sr=…&sig=…&se=…&skn=…'`);
  }
  return parseSasFields(token.slice(space + 1));
}

/** Case and a trailing slash do not distinguish resources (host names are case-insensitive). */
export function normalizeSasResource(resource: string): string {
  return resource.toLowerCase().replace(/\/+$/, "");
}

/** `<hub>.azure-devices.net[/devices/…]`: such a resource can never be ours. */
export function isIotHubResource(resource: string): boolean {
  const normalized = normalizeSasResource(resource);
  const host = normalized.split("/")[0] ?? "";
  return host.endsWith(".azure-devices.net") || `${normalized}/`.includes("/devices/");
}

export interface SasPolicyKeys {
  readonly name: string;
  /** base64 */
  readonly primaryKey: string;
  /** base64 */
  readonly secondaryKey?: string | undefined;
}

export interface SasVerifierOptions {
  /** The `sr` our tokens carry (`SERVICE_SAS_RESOURCE`). */
  readonly resource: string;
  readonly policies: readonly SasPolicyKeys[];
  readonly clockSkewSeconds?: number;
  /**
   * Longest accepted remaining lifetime (`se` - now), seconds; default MAX_SAS_TTL_SECONDS. A SAS
   * is revoked only by rotating its key, so a token for the next century is refused.
   */
  readonly maxLifetimeSeconds?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  readonly now?: () => number;
}

export type SasVerification =
  { readonly ok: true; readonly policyName: string } | { readonly ok: false; readonly reason: string };

/** Checks resource, policy, expiry and signature. Never throws for any input. */
export class SasVerifier {
  private readonly resource: string;
  private readonly keys: ReadonlyMap<string, readonly Buffer[]>;
  private readonly skew: number;
  private readonly maxLifetime: number;
  private readonly now: () => number;

  constructor(options: SasVerifierOptions) {
    this.resource = normalizeSasResource(options.resource);
    this.skew = options.clockSkewSeconds ?? DEFAULT_SAS_CLOCK_SKEW_SECONDS;
    this.maxLifetime = options.maxLifetimeSeconds ?? MAX_SAS_TTL_SECONDS;
    this.now = options.now ?? Date.now;
    const keys = new Map<string, Buffer[]>();
    for (const policy of options.policies) {
      const decoded = [policy.primaryKey, policy.secondaryKey].flatMap((k) => {
        if (k === undefined) return [];
        const bytes = decodeBase64Strict(k);
        if (bytes === undefined) throw new TypeError(`SAS policy '${policy.name}': key is not base64`);
        return [bytes];
      });
      keys.set(policy.name, decoded);
    }
    this.keys = keys;
  }

  /** `credentials` is the part after `SharedAccessSignature `. */
  verify(credentials: string): SasVerification {
    let token: ParsedSas;
    try {
      token = parseSasFields(credentials);
    } catch (err) {
      if (err instanceof SasFormatError) return { ok: false, reason: `malformed SAS token: ${err.message}` };
      throw err;
    }
    if (normalizeSasResource(token.resource) !== this.resource) {
      return {
        ok: false,
        reason: isIotHubResource(token.resource)
          ? "SAS token is for an IoT Hub, not for this service (sr names an IoT Hub)"
          : "SAS token resource (sr) does not match this service",
      };
    }
    const keys = this.keys.get(token.policyName);
    if (keys === undefined) return { ok: false, reason: "SAS token names an unknown policy (skn)" };
    const nowSeconds = Math.floor(this.now() / 1000);
    if (token.expiry + this.skew <= nowSeconds) {
      return { ok: false, reason: "SAS token expired" };
    }
    if (token.expiry - nowSeconds > this.maxLifetime + this.skew) {
      return {
        ok: false,
        reason: `SAS token lives too long: its expiry (se) may be at most ${this.maxLifetime} seconds ahead`,
      };
    }
    // Every key is checked so that timing does not tell which one matched.
    let matched = false;
    for (const key of keys) {
      matched =
        timingSafeEqual(sasSignature(key, token.signedResource, token.expiry), token.signature) || matched;
    }
    if (!matched) return { ok: false, reason: "SAS token signature is invalid" };
    return { ok: true, policyName: token.policyName };
  }
}

export interface SasAuthenticatorOptions extends SasVerifierOptions {
  readonly policies: readonly (SasPolicyKeys & GrantSpec)[];
}

/** The chain's SAS link: verifies the token and attaches the policy's grant. */
export class SasAuthenticator implements Authenticator<SasPrincipal> {
  readonly scheme = SAS_SCHEME;
  private readonly verifier: SasVerifier;
  private readonly grants: ReadonlyMap<string, Grant>;

  constructor(options: SasAuthenticatorOptions) {
    this.verifier = new SasVerifier(options);
    this.grants = new Map(options.policies.map((p) => [p.name, compileGrant(`SAS policy '${p.name}'`, p)]));
  }

  async authenticate({ scheme, credentials }: Credentials): Promise<AuthOutcome<SasPrincipal>> {
    if (scheme.toLowerCase() !== SAS_SCHEME.toLowerCase()) return { kind: "notMine" };
    const result = this.verifier.verify(credentials);
    if (!result.ok) return { kind: "rejected", reason: result.reason };
    const grant = this.grants.get(result.policyName) as Grant;
    return {
      kind: "authenticated",
      principal: { kind: "sas", policyName: result.policyName, grants: [grant] },
    };
  }
}
