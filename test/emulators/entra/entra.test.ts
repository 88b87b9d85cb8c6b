/**
 * The local Entra ID as the Azure SDK reads it: ClientSecretCredential (MSAL's client-credentials
 * grant through OIDC discovery), DefaultAzureCredential through the App Service managed-identity
 * endpoint, and tokens with the claims Entra puts in v1 and v2 access tokens.
 */
import { randomUUID } from "node:crypto";
import https from "node:https";
import { ClientSecretCredential, DefaultAzureCredential } from "@azure/identity";
import { jose } from "../../../shared/auth/jose";
import { startEntraEmulator, type EntraEmulator } from "../../../emulators/entra";
import { type Tenant, startTenant } from "./tenant";

jest.setTimeout(60_000);

let tenant: Tenant;
beforeAll(async () => {
  tenant = await startTenant();
});
afterAll(async () => {
  await tenant.close();
});

function getJson(url: string, ca: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
          }),
        );
      })
      .on("error", reject);
  });
}

test("OIDC discovery (v2 and v1) names the issuer, token, authorize and JWKS endpoints on the authority host", async () => {
  const { entra, tls } = tenant;
  const v2 = await getJson(
    `${entra.authorityHost}/${entra.tenantId}/v2.0/.well-known/openid-configuration`,
    tls.caPem,
  );
  expect(v2.status).toBe(200);
  expect(v2.body).toMatchObject({
    issuer: `${entra.authorityHost}/${entra.tenantId}/v2.0`,
    token_endpoint: `${entra.authorityHost}/${entra.tenantId}/oauth2/v2.0/token`,
    authorization_endpoint: `${entra.authorityHost}/${entra.tenantId}/oauth2/v2.0/authorize`,
    jwks_uri: `${entra.authorityHost}/${entra.tenantId}/discovery/v2.0/keys`,
  });
  const v1 = await getJson(
    `${entra.authorityHost}/${entra.tenantId}/.well-known/openid-configuration`,
    tls.caPem,
  );
  expect(v1.body).toMatchObject({
    issuer: `https://sts.windows.net/${entra.tenantId}/`,
    token_endpoint: `${entra.authorityHost}/${entra.tenantId}/oauth2/token`,
  });
  const keys = await getJson(v2.body.jwks_uri as string, tls.caPem);
  expect(keys.body.keys).toEqual([expect.objectContaining({ kty: "RSA", alg: "RS256", use: "sig" })]);
  const other = await getJson(
    `${entra.authorityHost}/${randomUUID()}/v2.0/.well-known/openid-configuration`,
    tls.caPem,
  );
  expect(other.status).toBe(400);
  expect(other.body.error_codes).toEqual([90002]);
});

test("ClientSecretCredential gets a v1 token for an Azure resource: sts.windows.net issuer, resource audience, appid, no roles", async () => {
  const before = tenant.entra.hits.clientCredentials;
  const token = await tenant.credential(tenant.reader).getToken("https://webpubsub.azure.com/.default");
  const claims = jose.decodeJwt(token!.token);
  expect(claims).toMatchObject({
    aud: "https://webpubsub.azure.com",
    iss: `https://sts.windows.net/${tenant.entra.tenantId}/`,
    tid: tenant.entra.tenantId,
    oid: tenant.reader.objectId,
    appid: tenant.reader.clientId,
    ver: "1.0",
  });
  expect(claims.roles).toBeUndefined();
  expect(claims.nbf).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  expect(claims.exp).toBeGreaterThan(Math.floor(Date.now() / 1000) + 3000);
  expect(tenant.entra.hits.clientCredentials).toBe(before + 1);
  const header = jose.decodeProtectedHeader(token!.token);
  const jwks = jose.createLocalJWKSet(tenant.entra.issuer.jwks);
  await expect(jose.jwtVerify(token!.token, jwks)).resolves.toBeDefined();
  expect(header.alg).toBe("RS256");
});

test("an application that accepts v2 tokens gets aud = its client id, the v2 issuer on the local host, azp and its app roles", async () => {
  const { tls } = tenant;
  const api = {
    clientId: randomUUID(),
    identifierUris: ["api://device-streams"],
    accessTokenVersion: 2 as const,
  };
  const caller = { objectId: randomUUID(), clientId: randomUUID(), secret: randomUUID() };
  const entra: EntraEmulator = await startEntraEmulator({
    tls,
    principals: [caller],
    applications: [{ ...api, appRoleAssignments: { [caller.objectId]: ["Streams.Operator"] } }],
  });
  try {
    const credential = new ClientSecretCredential(entra.tenantId, caller.clientId, caller.secret, {
      authorityHost: entra.authorityHost,
      disableInstanceDiscovery: true,
      tlsOptions: { ca: tls.caPem },
    });
    const claims = jose.decodeJwt((await credential.getToken("api://device-streams/.default")).token);
    expect(claims).toMatchObject({
      aud: api.clientId,
      iss: `${entra.authorityHost}/${entra.tenantId}/v2.0`,
      azp: caller.clientId,
      oid: caller.objectId,
      roles: ["Streams.Operator"],
      ver: "2.0",
    });
  } finally {
    await entra.close();
  }
});

test("a wrong client secret is refused with Entra's AADSTS7000215, and the secret is not in the error", async () => {
  const { entra } = tenant;
  const secret = `wrong-${randomUUID()}`;
  const credential = new ClientSecretCredential(entra.tenantId, tenant.reader.clientId, secret, {
    authorityHost: entra.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: tenant.tls.caPem },
  });
  const err = (await credential
    .getToken("https://webpubsub.azure.com/.default")
    .catch((e: unknown) => e)) as Error;
  expect(err.message).toMatch(/AADSTS7000215/);
  expect(err.message).not.toContain(secret);
});

describe("DefaultAzureCredential through the App Service managed-identity endpoint", () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });

  it("runs unchanged with IDENTITY_ENDPOINT + IDENTITY_HEADER and no client secret: the endpoint's hit count proves the path", async () => {
    const { entra, app } = tenant;
    for (const k of [
      "AZURE_CLIENT_SECRET",
      "AZURE_TENANT_ID",
      "AZURE_CLIENT_CERTIFICATE_PATH",
      "AZURE_FEDERATED_TOKEN_FILE",
      "MSI_ENDPOINT",
    ])
      delete process.env[k];
    process.env.IDENTITY_ENDPOINT = entra.identityEndpoint;
    process.env.IDENTITY_HEADER = entra.identityHeader;
    const before = entra.hits.managedIdentity;
    const credential = new DefaultAzureCredential({ managedIdentityClientId: app.clientId });
    const token = await credential.getToken("https://iothubs.azure.net/.default");
    expect(jose.decodeJwt(token.token)).toMatchObject({
      aud: "https://iothubs.azure.net",
      oid: app.objectId,
      appid: app.clientId,
      iss: `https://sts.windows.net/${entra.tenantId}/`,
    });
    expect(entra.hits.managedIdentity).toBe(before + 1);
  });

  it("refuses a wrong X-IDENTITY-HEADER", async () => {
    const { entra, app } = tenant;
    const res = await fetch(
      `${entra.identityEndpoint}?api-version=2019-08-01&resource=https://iothubs.azure.net&client_id=${app.clientId}`,
      { headers: { "X-IDENTITY-HEADER": randomUUID() } },
    );
    expect(res.status).toBe(401);
  });
});
