/**
 * Bearer tokens on our emulators as Azure checks them: signature against the local issuer's JWKS,
 * audience, lifetime, and an Azure RBAC role assignment for the token's `oid` (never a claim).
 * Web PubSub REST (audience https://webpubsub.azure.com) and IoT Hub service REST (audience
 * https://iothubs.azure.net), through the official SDK clients the control plane uses.
 */
import { randomUUID } from "node:crypto";
import { RestError } from "@azure/core-rest-pipeline";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import type { TokenCredential } from "@azure/core-auth";
import { jose } from "../../../shared/auth/jose";
import { toErrorResponse } from "../../../shared/http/respond";
import { createIotHubClients } from "../../../shared/iothub/clients";
import { type WebPubSubEmulator, startWebPubSubEmulator } from "../../../emulators/webpubsub";
import { type IotHubEmulator, startIotHubEmulator } from "../../../emulators/iothub";
import { type BearerCheck, bearerCheck } from "../../../emulators/entra/rbac";
import { newSigningKey, TokenIssuer } from "../../../emulators/entra/tokens";
import { type Tenant, fixedToken, startTenant } from "./tenant";

jest.setTimeout(60_000);

const WPS_SCOPE = "Microsoft.SignalRService/webPubSub";
const HUB_SCOPE = "Microsoft.Devices/IotHubs";
let tenant: Tenant;
let wps: WebPubSubEmulator;
let wpsCheck: BearerCheck;
let hub: IotHubEmulator;
let hubCheck: BearerCheck;

beforeAll(async () => {
  tenant = await startTenant();
  const issuers = [tenant.entra.issuer.v1Issuer(), tenant.entra.issuer.v2Issuer()];
  const assignments = () => tenant.assignments;
  wpsCheck = bearerCheck(tenant.entra.issuer.jwks, {
    issuers,
    audience: "https://webpubsub.azure.com",
    scope: WPS_SCOPE,
    assignments,
  });
  hubCheck = bearerCheck(tenant.entra.issuer.jwks, {
    issuers,
    audience: "https://iothubs.azure.net",
    scope: HUB_SCOPE,
    assignments,
  });
  wps = await startWebPubSubEmulator({ port: 0, tls: tenant.tls, entra: wpsCheck });
  hub = await startIotHubEmulator({ httpsPort: 0, mqttPort: 0, stateDir: tenant.dir, entra: hubCheck });
});

afterAll(async () => {
  await wps?.close();
  await hub?.close();
  await tenant?.close();
});

const wpsClient = (credential: TokenCredential) =>
  new WebPubSubServiceClient(wps.endpoint, credential, "streams", { tlsOptions: { ca: tenant.tls.caPem } });

const hubClient = (credential: TokenCredential) =>
  createIotHubClients({ hostName: `127.0.0.1:${hub.httpsPort}`, credential, ca: tenant.tls.caPem });

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof RestError) return err.statusCode ?? 0;
    const code = (err as { responseBody?: string; response?: { statusCode?: number } }).response?.statusCode;
    if (code !== undefined) return code;
    throw err;
  }
}

async function invokeStatus(credential: TokenCredential): Promise<number> {
  const { client } = hubClient(credential);
  return status(client.invokeDeviceMethod(`missing-${randomUUID()}`, { methodName: "x", payload: null }));
}

/** A token for `audience`, minted by the tenant's issuer or another one, optionally long expired. */
async function token(audience: string, options: { signer?: "other"; expired?: boolean } = {}) {
  const issuer =
    options.signer === "other"
      ? new TokenIssuer(await newSigningKey(), tenant.entra.tenantId, () => tenant.entra.authorityHost, [])
      : tenant.entra.issuer;
  const issued = await issuer.issue({
    principal: tenant.app,
    resource: audience,
    ...(options.expired ? { nowSeconds: Math.floor(Date.now() / 1000) - 7200, lifetimeSeconds: 3600 } : {}),
  });
  return fixedToken(issued.token);
}

describe("Web PubSub emulator REST", () => {
  it("accepts the owner's Entra token for :generateToken and group reads, counting bearer requests", async () => {
    const before = wpsCheck.accepted;
    const client = wpsClient(tenant.credential(tenant.app));
    const { token: clientToken } = await client.getClientAccessToken({ userId: "u", groups: ["g"] });
    expect(jose.decodeJwt(clientToken).aud).toBe(`${wps.endpoint}/client/hubs/streams`);
    expect(await status(client.group("g").closeAllConnections())).toBe(200);
    expect(wpsCheck.accepted).toBe(before + 2);
  });

  it("refuses :generateToken to a principal with only Web PubSub Service Reader (403), which may still read", async () => {
    const client = wpsClient(tenant.credential(tenant.reader));
    const err = (await client.getClientAccessToken().catch((e: unknown) => e)) as RestError;
    expect(err.statusCode).toBe(403);
    expect(err.message).toMatch(/no role assignment/);
    expect(await status(client.groupExists("g"))).toBe(200);
  });

  it("a refusal of the control plane's own identity reaches its caller as a clear 503 that names the service and nothing else", async () => {
    const refused = await wpsClient(tenant.credential(tenant.reader))
      .getClientAccessToken()
      .catch((e: unknown) => e);
    const logged: string[] = [];
    const res = toErrorResponse(refused, (m) => logged.push(m));
    expect(res.status).toBe(503);
    const { error } = res.jsonBody as { error: { code: string; message: string } };
    expect(error.code).toBe("UpstreamAuthorizationFailed");
    expect(error.message).toMatch(
      /^Web PubSub refused the control plane's credential \(403\): check the app identity's role assignments/,
    );
    // What the service said (principals, resources) stays in the log.
    expect(error.message).not.toMatch(/no role assignment|oid|principal/i);
    expect(logged.join("\n")).toMatch(/no role assignment/);
  });

  it("refuses a principal with no role assignment at all (403)", async () => {
    expect(await status(wpsClient(tenant.credential(tenant.nobody)).getClientAccessToken())).toBe(403);
  });

  it.each([
    ["a wrong audience", () => token("https://iothubs.azure.net")],
    ["a wrong signer", () => token("https://webpubsub.azure.com", { signer: "other" })],
    ["an expired token", () => token("https://webpubsub.azure.com", { expired: true })],
  ])("refuses %s with 401", async (_what, make) => {
    const err = (await wpsClient(await make())
      .getClientAccessToken()
      .catch((e: unknown) => e)) as RestError;
    expect(err.statusCode).toBe(401);
  });
});

describe("IoT Hub emulator service REST", () => {
  it("accepts the Data Contributor's Entra token for a direct method (the device is unknown: 404, past auth)", async () => {
    const before = hubCheck.accepted;
    expect(await invokeStatus(tenant.credential(tenant.app))).toBe(404);
    expect(hubCheck.accepted).toBe(before + 1);
  });

  it("refuses a direct method to IoT Hub Data Reader (403), which may still read the registry", async () => {
    expect(await invokeStatus(tenant.credential(tenant.reader))).toBe(403);
    const { registry } = hubClient(tenant.credential(tenant.reader));
    expect(await status(registry!.list())).toBe(200);
  });

  it.each([
    ["a wrong audience", () => token("https://webpubsub.azure.com")],
    ["a wrong signer", () => token("https://iothubs.azure.net", { signer: "other" })],
    ["an expired token", () => token("https://iothubs.azure.net", { expired: true })],
  ])("refuses %s with 401", async (_what, make) => {
    expect(await invokeStatus(await make())).toBe(401);
  });
});
