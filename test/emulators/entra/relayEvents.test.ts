/**
 * Event-handler auth type ManagedIdentity: the Web PubSub emulator sends a token of its own
 * identity, from the local issuer, for the configured resource; the control plane's relay-event
 * guard accepts it in both forms Entra issues (v1: aud = the App ID URI, iss sts.windows.net; v2:
 * aud = the client id, iss {authority}/{tid}/v2.0) when RELAY_EVENTS_AUDIENCE lists both.
 */
import { randomUUID } from "node:crypto";
import { parseAuthConfig } from "../../../shared/auth/config";
import { JwtVerifier, RelayEventAuthenticator } from "../../../shared/auth";
import { jose } from "../../../shared/auth/jose";
import { type EntraEmulator, startEntraEmulator } from "../../../emulators/entra";
import { startWebPubSubEmulator } from "../../../emulators/webpubsub";
import { rawClient, serviceClient, startEventHandler } from "../webpubsub/helpers";
import { ensureTlsMaterial } from "../../../emulators/iothub/certs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

jest.setTimeout(60_000);

const relay = { objectId: randomUUID(), clientId: randomUUID() };
const v1App = {
  clientId: randomUUID(),
  identifierUris: ["api://device-streams-events"],
  accessTokenVersion: 1 as const,
};
const v2App = {
  clientId: randomUUID(),
  identifierUris: ["api://device-streams-v2"],
  accessTokenVersion: 2 as const,
};
let dir: string;
let entra: EntraEmulator;
let guard: RelayEventAuthenticator;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-mi-"));
  entra = await startEntraEmulator({
    tls: await ensureTlsMaterial(dir),
    principals: [relay],
    applications: [v1App, v2App],
    managedIdentities: [relay.clientId],
  });
  // The settings as infra writes them: every entraAudience value, comma-separated.
  const parsed = parseAuthConfig({
    ENTRA_TENANT_ID: entra.tenantId,
    ENTRA_AUTHORITY_HOST: entra.authorityHost,
    RELAY_EVENTS_PRINCIPAL_ID: relay.objectId,
    RELAY_EVENTS_AUDIENCE: `${v1App.identifierUris[0]}, ${v2App.clientId}`,
    SERVICE_SAS_POLICIES: JSON.stringify([
      { name: "p", primaryKey: Buffer.alloc(32, 1).toString("base64"), devices: ["*"], streams: ["*"] },
    ]),
  });
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  const mi = parsed.config.relayEvents.managedIdentity!;
  guard = new RelayEventAuthenticator({
    allowedOrigins: ["127.0.0.1"],
    accessKeys: [],
    managedIdentity: {
      principalId: mi.principalId,
      // The issuer's key set as the guard would fetch it from ENTRA_JWKS_URI.
      verifier: new JwtVerifier({
        keys: jose.createLocalJWKSet(entra.issuer.jwks),
        issuers: mi.endpoints.issuers,
        audiences: mi.audiences,
      }),
    },
  });
});

afterAll(async () => {
  await entra.close();
  await rm(dir, { recursive: true, force: true });
});

async function connectEventHeaders(resource: string): Promise<Headers> {
  const handler = await startEventHandler();
  const wps = await startWebPubSubEmulator({
    port: 0,
    eventHandlers: {
      streams: {
        urlTemplate: handler.url,
        systemEvents: ["connect"],
        auth: { type: "ManagedIdentity", resource },
      },
    },
    identityToken: async (r) => (await entra.issue(relay, r)).token,
  });
  try {
    const { url } = await serviceClient(wps, "streams").getClientAccessToken({ userId: "u" });
    const client = await rawClient(url).catch(() => undefined);
    client?.ws.terminate();
    const event = await handler.events.wait();
    return new Headers(Object.entries(event.headers).map(([k, v]) => [k, String(v)]));
  } finally {
    await wps.close();
    await handler.close();
  }
}

test.each([
  [
    "v1",
    v1App.identifierUris[0]!,
    { aud: v1App.identifierUris[0], iss: () => `https://sts.windows.net/${entra.tenantId}/` },
  ],
  [
    "v2",
    v2App.identifierUris[0]!,
    { aud: v2App.clientId, iss: () => `${entra.authorityHost}/${entra.tenantId}/v2.0` },
  ],
])("the hub's %s managed-identity token is accepted by the relay-event guard", async (_v, resource, want) => {
  const headers = await connectEventHeaders(resource);
  const token = /^Bearer (.+)$/.exec(headers.get("authorization") ?? "")?.[1];
  expect(jose.decodeJwt(token!)).toMatchObject({ aud: want.aud, iss: want.iss(), oid: relay.objectId });
  await expect(guard.authenticate(headers)).resolves.toEqual({
    method: "managedIdentity",
    principalId: relay.objectId,
  });
});

test("a token for an audience not in RELAY_EVENTS_AUDIENCE is refused", async () => {
  const headers = await connectEventHeaders("https://webpubsub.azure.com");
  await expect(guard.authenticate(headers)).rejects.toMatchObject({
    statusCode: 401,
    message: expect.stringMatching(/token audience is not accepted/),
  });
});
