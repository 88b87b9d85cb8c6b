/**
 * Bearer tokens as an Azure data plane checks them: signature against the issuer's key set, issuer,
 * audience and lifetime, then Azure RBAC: a role *assignment* for the token's `oid` on the
 * service's scope. Data-plane roles never appear in the token (its `roles` claim holds app roles
 * only), so the check reads the assignment table, which the local stack builds from infra/.
 */
import { jose } from "../../shared/auth/jose";

/** One role assignment: who (object id), which built-in role (GUID), on what (resource type). */
export interface RoleAssignment {
  readonly principalId: string;
  readonly roleDefinitionId: string;
  /** The resource type the role is granted on, e.g. `Microsoft.SignalRService/webPubSub`. */
  readonly scope: string;
}

/** Built-in roles the local services know (GUIDs from Azure's built-in roles reference). */
export const BUILT_IN_ROLES = {
  webPubSubServiceOwner: "12cf5a90-567b-43ae-8102-96cf46c7d9b4",
  webPubSubServiceReader: "bfb1c7d2-fb1a-466b-b2ba-aee63b92deaf",
  iotHubDataContributor: "4fc6c259-987e-4a07-842e-c321cc9d413f",
  iotHubDataReader: "b447c946-2db7-41ec-983d-d8bf3b1c77e3",
  iotHubRegistryContributor: "4ea46cd5-c1b2-4a8e-910b-273211f9ce47",
  storageTableDataContributor: "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
  storageTableDataReader: "76199698-9eea-4c19-bc75-cec21354c6b6",
} as const;

export type BearerOutcome =
  | { readonly ok: true; readonly objectId: string; readonly roles: readonly string[] }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

export interface BearerCheckOptions {
  /** The issuer's key set (the local Entra ID's JWKS). */
  readonly keys: jose.JWTVerifyGetKey;
  readonly issuers: readonly string[];
  /** The service's audience, e.g. `https://webpubsub.azure.com`. */
  readonly audience: string;
  /** The scope this service is (a resource type); assignments on other scopes do not count. */
  readonly scope: string;
  /** Read on every request, so grants added or removed at run time apply at once. */
  readonly assignments: () => readonly RoleAssignment[];
  /** Azure's clock skew allowance on `exp`/`nbf`: 5 minutes. */
  readonly clockToleranceSeconds?: number;
}

export class BearerCheck {
  /** Requests that carried a bearer token, whatever the outcome: tests prove the keyless path with it. */
  seen = 0;
  accepted = 0;

  constructor(private readonly options: BearerCheckOptions) {}

  /** `allowed`: the role GUIDs that permit this operation. */
  async check(authorization: string, allowed: readonly string[]): Promise<BearerOutcome> {
    this.seen++;
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    if (!token) return { ok: false, status: 401, reason: "malformed Authorization header" };
    let claims: jose.JWTPayload;
    try {
      ({ payload: claims } = await jose.jwtVerify(token, this.options.keys, {
        algorithms: ["RS256"],
        issuer: [...this.options.issuers],
        audience: this.options.audience,
        requiredClaims: ["exp", "oid"],
        clockTolerance: this.options.clockToleranceSeconds ?? 300,
      }));
    } catch (err) {
      return { ok: false, status: 401, reason: describe(err) };
    }
    const objectId = String(claims.oid);
    const roles = this.options
      .assignments()
      .filter((a) => a.principalId === objectId && a.scope.toLowerCase() === this.options.scope.toLowerCase())
      .map((a) => a.roleDefinitionId);
    if (!roles.some((r) => allowed.includes(r))) {
      return {
        ok: false,
        status: 403,
        reason: `principal ${objectId} has no role assignment on ${this.options.scope} that permits this operation`,
      };
    }
    this.accepted++;
    return { ok: true, objectId, roles };
  }
}

/** jose's failure as a short reason; never the token. */
function describe(err: unknown): string {
  if (err instanceof jose.errors.JWTExpired) return "token expired";
  if (err instanceof jose.errors.JWTClaimValidationFailed)
    return `token claim '${err.claim}' is not accepted`;
  if (err instanceof jose.errors.JWSSignatureVerificationFailed) return "token signature is invalid";
  if (err instanceof jose.errors.JWKSNoMatchingKey) return "token is not signed by a key of the issuer";
  if (err instanceof jose.errors.JOSEAlgNotAllowed) return "token algorithm is not accepted";
  return "malformed token";
}

/** A check against an issuer's JWKS document (what the local Entra ID serves). */
export function bearerCheck(
  jwks: { keys: jose.JWK[] },
  options: Omit<BearerCheckOptions, "keys">,
): BearerCheck {
  return new BearerCheck({ ...options, keys: jose.createLocalJWKSet(jwks) });
}
