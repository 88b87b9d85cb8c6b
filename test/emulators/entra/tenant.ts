/** A local tenant for tests: TLS material from the local CA, the Entra emulator and a few principals. */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClientSecretCredential } from "@azure/identity";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { ensureTlsMaterial, type TlsMaterial } from "../../../emulators/iothub/certs";
import { type EntraEmulator, type LocalPrincipal, startEntraEmulator } from "../../../emulators/entra";
import { BUILT_IN_ROLES, type RoleAssignment } from "../../../emulators/entra/rbac";

const principal = (secret?: string): LocalPrincipal => ({
  objectId: randomUUID(),
  clientId: randomUUID(),
  ...(secret ? { secret } : {}),
});

export interface Tenant {
  dir: string;
  tls: TlsMaterial;
  entra: EntraEmulator;
  /** The control plane's managed identity. */
  app: LocalPrincipal;
  /** A backend with only the reader roles. */
  reader: LocalPrincipal;
  /** A backend with no role at all. */
  nobody: LocalPrincipal;
  assignments: RoleAssignment[];
  /** A ClientSecretCredential against the local authority, as the CLI builds it. */
  credential(p: LocalPrincipal): TokenCredential;
  close(): Promise<void>;
}

export async function startTenant(): Promise<Tenant> {
  const dir = await mkdtemp(join(tmpdir(), "entra-"));
  const tls = await ensureTlsMaterial(dir);
  const app = principal(randomUUID());
  const reader = principal(randomUUID());
  const nobody = principal(randomUUID());
  const entra = await startEntraEmulator({
    tls,
    principals: [app, reader, nobody],
    managedIdentities: [app.clientId],
  });
  const r = BUILT_IN_ROLES;
  const assignments: RoleAssignment[] = [
    {
      principalId: app.objectId,
      roleDefinitionId: r.webPubSubServiceOwner,
      scope: "Microsoft.SignalRService/webPubSub",
    },
    {
      principalId: app.objectId,
      roleDefinitionId: r.iotHubDataContributor,
      scope: "Microsoft.Devices/IotHubs",
    },
    {
      principalId: reader.objectId,
      roleDefinitionId: r.webPubSubServiceReader,
      scope: "Microsoft.SignalRService/webPubSub",
    },
    {
      principalId: reader.objectId,
      roleDefinitionId: r.iotHubDataReader,
      scope: "Microsoft.Devices/IotHubs",
    },
  ];
  return {
    dir,
    tls,
    entra,
    app,
    reader,
    nobody,
    assignments,
    credential: (p) =>
      new ClientSecretCredential(entra.tenantId, p.clientId, p.secret!, {
        authorityHost: entra.authorityHost,
        disableInstanceDiscovery: true,
        tlsOptions: { ca: tls.caPem },
      }),
    close: async () => {
      await entra.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A credential that hands out one fixed token, whatever the scope: for forged or wrong tokens. */
export function fixedToken(token: string): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
}
