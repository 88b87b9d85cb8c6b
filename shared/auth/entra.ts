import { compileGrant, type GrantSpec } from "./authorize";
import type { AuthOutcome, Authenticator, Credentials } from "./chain";
import { stringClaim, type JwtVerifier } from "./jwt";
import type { EntraPrincipal, Grant } from "./principal";

export const BEARER_SCHEME = "Bearer";

/** An app role (the `value` that appears in the token's `roles` claim) and what it may do. */
export interface EntraRoleGrant extends GrantSpec {
  readonly role: string;
}

export interface EntraAuthenticatorOptions {
  /** Configured with the tenant's key set, issuers and our audiences (see `entraEndpoints`). */
  readonly verifier: JwtVerifier;
  readonly roles: readonly EntraRoleGrant[];
}

export function isBearer(scheme: string): boolean {
  return scheme.toLowerCase() === BEARER_SCHEME.toLowerCase();
}

/** The chain's Entra ID link: a valid token that carries at least one configured app role. */
export class EntraAuthenticator implements Authenticator<EntraPrincipal> {
  readonly scheme = BEARER_SCHEME;
  private readonly verifier: JwtVerifier;
  private readonly grants: ReadonlyMap<string, Grant>;

  constructor(options: EntraAuthenticatorOptions) {
    this.verifier = options.verifier;
    this.grants = new Map(options.roles.map((r) => [r.role, compileGrant(`app role '${r.role}'`, r)]));
  }

  async authenticate({ scheme, credentials }: Credentials): Promise<AuthOutcome<EntraPrincipal>> {
    if (!isBearer(scheme)) return { kind: "notMine" };
    const result = await this.verifier.verify(credentials);
    if (!result.ok) return { kind: "rejected", reason: result.reason };
    const { claims } = result;
    const objectId = stringClaim(claims, "oid");
    const appId = stringClaim(claims, "azp") ?? stringClaim(claims, "appid");
    if (objectId === undefined && appId === undefined) {
      return { kind: "rejected", reason: "token names no caller (no oid, azp or appid claim)" };
    }
    const roles = Array.isArray(claims.roles)
      ? claims.roles.filter((r): r is string => typeof r === "string")
      : [];
    const grants = roles.flatMap((r) => this.grants.get(r) ?? []);
    if (grants.length === 0) {
      // The identity is proven; it just has no business here. That is a 403, not a 401. The
      // configured role names stay out of the body: they would map the deployment for any tenant
      // member; the administrator who assigns roles knows them (ENTRA_ROLES).
      return {
        kind: "forbidden",
        reason: "The token carries none of the app roles this service grants.",
      };
    }
    return {
      kind: "authenticated",
      principal: {
        kind: "entra",
        ...(objectId !== undefined ? { objectId } : {}),
        ...(appId !== undefined ? { appId } : {}),
        roles,
        grants,
      },
    };
  }
}
