/**
 * Service authentication, authorization and relay-event authentication. The factories below wire
 * the building blocks from a parsed `AuthConfig`; everything is also exported for finer wiring.
 */
import { AuthChain, type Authenticator } from "./chain";
import type { AuthConfig } from "./config";
import { EntraAuthenticator } from "./entra";
import { JwtVerifier, KeySets } from "./jwt";
import type { Principal } from "./principal";
import { RelayEventAuthenticator, type ManagedIdentityCheck } from "./relayEvents";
import { SasAuthenticator } from "./sas";

export interface AuthWiringOptions {
  /** Share one across both factories so the tenant's keys are fetched once. */
  readonly keySets?: KeySets;
  /** Injectable clock for tests. */
  readonly now?: () => Date;
}

/** SAS first (cheap, local), then Entra ID when configured. */
export function createServiceAuthChain(
  config: AuthConfig,
  options: AuthWiringOptions = {},
): AuthChain<Principal> {
  const { now } = options;
  const authenticators: Authenticator<Principal>[] = [];
  if (config.sas.policies.length > 0) {
    authenticators.push(
      new SasAuthenticator({
        resource: config.sas.resource,
        policies: config.sas.policies,
        maxLifetimeSeconds: config.sas.maxLifetimeSeconds,
        ...(now ? { now: () => now().getTime() } : {}),
      }),
    );
  }
  if (config.entra) {
    const keySets = options.keySets ?? new KeySets();
    const verifier = new JwtVerifier({
      keys: keySets.get(config.entra.endpoints.jwksUri),
      issuers: config.entra.endpoints.issuers,
      audiences: config.entra.audiences,
      ...(now ? { now } : {}),
    });
    authenticators.push(new EntraAuthenticator({ verifier, roles: config.entra.roles }));
  }
  return new AuthChain(authenticators);
}

/**
 * `accessKeys` are the Web PubSub access keys from its connection string (empty in keyless mode);
 * `defaultOrigin` is the Web PubSub endpoint's host, allowed when RELAY_EVENTS_ALLOWED_ORIGINS is
 * empty, as the Functions Web PubSub extension allows the connection-string host.
 */
export function createRelayEventAuthenticator(
  config: AuthConfig,
  accessKeys: readonly string[],
  defaultOrigin?: string,
  options: AuthWiringOptions = {},
): RelayEventAuthenticator {
  const { allowedOrigins, managedIdentity } = config.relayEvents;
  const origins = allowedOrigins.length > 0 ? allowedOrigins : defaultOrigin ? [defaultOrigin] : [];
  let check: ManagedIdentityCheck | undefined;
  if (managedIdentity) {
    const keySets = options.keySets ?? new KeySets();
    check = {
      principalId: managedIdentity.principalId,
      verifier: new JwtVerifier({
        keys: keySets.get(managedIdentity.endpoints.jwksUri),
        issuers: managedIdentity.endpoints.issuers,
        audiences: managedIdentity.audiences,
        ...(options.now ? { now: options.now } : {}),
      }),
    };
  }
  return new RelayEventAuthenticator({ allowedOrigins: origins, accessKeys, managedIdentity: check });
}

export * from "./authorize";
export * from "./chain";
export * from "./config";
export * from "./entra";
export * from "./glob";
export * from "./jwt";
export * from "./principal";
export * from "./relayEvents";
export * from "./sas";
