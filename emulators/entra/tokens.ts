/**
 * The local issuer's signing key and the access tokens it mints, in the two forms Microsoft Entra
 * ID issues: v1 (`iss` https://sts.windows.net/{tid}/, `aud` = the resource as requested, `appid`)
 * and v2 (`iss` {authority}/{tid}/v2.0, `aud` = the resource application's client id, `azp`).
 * Azure resource APIs (Storage, Web PubSub, IoT Hub) always get v1 tokens; an application of
 * ours gets the version its `accessTokenAcceptedVersion` asks for (docs/entra-emulator.md).
 */
import { randomUUID } from "node:crypto";
import { jose } from "../../shared/auth/jose";

export type TokenVersion = 1 | 2;

/** A service principal of the local tenant: an app registration or a managed identity. */
export interface LocalPrincipal {
  /** Object id (`oid`): what Azure RBAC role assignments name. */
  readonly objectId: string;
  /** Application (client) id: `appid` (v1) / `azp` (v2). */
  readonly clientId: string;
  /** Client secret, for the client-credentials grant; managed identities have none. */
  readonly secret?: string;
}

/** A resource application of the tenant (an API with an App ID URI), e.g. our control plane. */
export interface LocalApplication {
  readonly clientId: string;
  /** App ID URIs, e.g. `api://device-streams`. */
  readonly identifierUris: readonly string[];
  /** `api.requestedAccessTokenVersion` of its manifest; Entra's default is 1. */
  readonly accessTokenVersion?: TokenVersion;
  /** App roles granted to principals (by object id): the only source of the `roles` claim. */
  readonly appRoleAssignments?: Readonly<Record<string, readonly string[]>>;
}

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: jose.CryptoKey;
  readonly jwk: jose.JWK;
}

export async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, use: "sig", alg: "RS256", kty: "RSA" };
  return { kid, privateKey, jwk };
}

/** `https://x/.default` → `https://x`: the resource a scope names, as Entra reads it. */
export function resourceOfScope(scope: string): string {
  return scope.replace(/\/\.default$/i, "");
}

export interface IssueRequest {
  readonly principal: LocalPrincipal;
  /** The resource (v1) or a `/.default` scope (v2) as the client sent it. */
  readonly resource: string;
  readonly lifetimeSeconds?: number;
  /** Test hook: shift the clock (expired tokens). */
  readonly nowSeconds?: number;
}

export interface IssuedToken {
  readonly token: string;
  readonly expiresOn: number;
  readonly claims: jose.JWTPayload;
}

export class TokenIssuer {
  constructor(
    private readonly key: SigningKey,
    readonly tenantId: string,
    /** `https://host:port`, the authority host the v2 issuer lives on. */
    private readonly authority: () => string,
    private readonly applications: readonly LocalApplication[],
  ) {}

  get jwks(): { keys: jose.JWK[] } {
    return { keys: [this.key.jwk] };
  }

  v1Issuer(): string {
    return `https://sts.windows.net/${this.tenantId}/`;
  }

  v2Issuer(): string {
    return `${this.authority()}/${this.tenantId}/v2.0`;
  }

  /** The application a resource names (App ID URI or client id), if it is one of the tenant's. */
  application(resource: string): LocalApplication | undefined {
    const wanted = resource.replace(/\/+$/, "").toLowerCase();
    return this.applications.find(
      (a) =>
        a.clientId.toLowerCase() === wanted ||
        a.identifierUris.some((u) => u.replace(/\/+$/, "").toLowerCase() === wanted),
    );
  }

  async issue(request: IssueRequest): Promise<IssuedToken> {
    const resource = resourceOfScope(request.resource);
    const app = this.application(resource);
    const version: TokenVersion = app?.accessTokenVersion ?? 1;
    const now = request.nowSeconds ?? Math.floor(Date.now() / 1000);
    const exp = now + (request.lifetimeSeconds ?? 3600);
    const { principal } = request;
    const roles = app?.appRoleAssignments?.[principal.objectId] ?? [];
    const claims: jose.JWTPayload = {
      aud: version === 2 && app ? app.clientId : resource,
      iss: version === 2 ? this.v2Issuer() : this.v1Issuer(),
      iat: now,
      nbf: now,
      exp,
      tid: this.tenantId,
      oid: principal.objectId,
      sub: principal.objectId,
      idtyp: "app",
      ver: version === 2 ? "2.0" : "1.0",
      ...(version === 2
        ? { azp: principal.clientId, azpacr: "1" }
        : { appid: principal.clientId, appidacr: "1" }),
      ...(roles.length > 0 ? { roles: [...roles] } : {}),
      uti: randomUUID().replace(/-/g, ""),
    };
    const token = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.key.kid })
      .sign(this.key.privateKey);
    return { token, expiresOn: exp, claims };
  }
}
