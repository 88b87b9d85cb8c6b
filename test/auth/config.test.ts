import { randomBytes, randomUUID } from "node:crypto";
import { HttpRequest } from "@azure/functions";
import { parseAuthConfig, type AuthConfig } from "../../shared/auth/config";
import { createRelayEventAuthenticator, createServiceAuthChain, KeySets } from "../../shared/auth";
import { mintSasToken } from "../../shared/auth/sas";
import { signConnectionId } from "../../shared/auth/relayEvents";
import { ApiError } from "../../shared/errors";
import { JwksServer, newSigningKey, signJwt } from "./support/jwks";

const KEY = randomBytes(32).toString("base64");
const SHORT_KEY = randomBytes(16).toString("base64");
const TENANT = randomUUID();
const WPS = randomUUID();

const policy = (over: Record<string, unknown> = {}) => ({
  name: "service",
  primaryKey: KEY,
  devices: ["*"],
  streams: ["*"],
  ...over,
});

function ok(env: Record<string, string | undefined>): AuthConfig {
  const result = parseAuthConfig(env);
  if (!result.ok) throw new Error(result.problems.join("\n"));
  return result.config;
}

function problems(env: Record<string, string | undefined>): string[] {
  const result = parseAuthConfig(env);
  if (result.ok) throw new Error("expected configuration problems");
  return result.problems;
}

describe("auth settings", () => {
  it("parses SAS policies with defaults", () => {
    const config = ok({ SERVICE_SAS_POLICIES: JSON.stringify([policy()]) });
    expect(config.sas).toEqual({
      resource: "localhost",
      policies: [policy()],
      maxLifetimeSeconds: 31_536_000,
    });
    expect(
      ok({ SERVICE_SAS_POLICIES: JSON.stringify([policy()]), SERVICE_SAS_MAX_LIFETIME_SECONDS: "86400" }).sas
        .maxLifetimeSeconds,
    ).toBe(86_400);
    expect(config.entra).toBeUndefined();
    expect(config.relayEvents).toEqual({ allowedOrigins: [] });
  });

  it("parses the full Entra ID and keyless relay setup", () => {
    const config = ok({
      SERVICE_SAS_RESOURCE: "func-x.azurewebsites.net",
      SERVICE_SAS_POLICIES: "",
      ENTRA_TENANT_ID: TENANT,
      ENTRA_AUDIENCE: "api://ds, 11111111-2222-3333-4444-555555555555",
      ENTRA_ROLES: JSON.stringify([
        { role: "Streams.Operator", devices: ["*"], streams: ["ssh"], actions: ["open"] },
      ]),
      RELAY_EVENTS_ALLOWED_ORIGINS: "a.webpubsub.azure.com,b.webpubsub.azure.com",
      RELAY_EVENTS_PRINCIPAL_ID: WPS,
      RELAY_EVENTS_AUDIENCE: "api://ds-events",
    });
    expect(config.entra).toEqual({
      tenantId: TENANT,
      audiences: ["api://ds", "11111111-2222-3333-4444-555555555555"],
      roles: [{ role: "Streams.Operator", devices: ["*"], streams: ["ssh"], actions: ["open"] }],
      endpoints: {
        jwksUri: `https://login.microsoftonline.com/${TENANT}/discovery/v2.0/keys`,
        issuers: [`https://sts.windows.net/${TENANT}/`, `https://login.microsoftonline.com/${TENANT}/v2.0`],
      },
    });
    expect(config.relayEvents).toEqual({
      allowedOrigins: ["a.webpubsub.azure.com", "b.webpubsub.azure.com"],
      managedIdentity: {
        principalId: WPS,
        audiences: ["api://ds-events"],
        endpoints: config.entra!.endpoints,
      },
    });
  });

  it("honours the endpoint overrides", () => {
    const config = ok({
      ENTRA_TENANT_ID: TENANT,
      ENTRA_AUDIENCE: "api://ds",
      ENTRA_ROLES: JSON.stringify([{ role: "r", devices: ["*"], streams: ["*"] }]),
      ENTRA_AUTHORITY_HOST: "https://login.microsoftonline.us/",
      ENTRA_ISSUER: "https://issuer.example/",
    });
    expect(config.entra!.endpoints).toEqual({
      jwksUri: `https://login.microsoftonline.us/${TENANT}/discovery/v2.0/keys`,
      issuers: ["https://issuer.example/"],
    });
    const local = ok({
      ENTRA_TENANT_ID: TENANT,
      ENTRA_AUDIENCE: "api://ds",
      ENTRA_ROLES: JSON.stringify([{ role: "r", devices: ["*"], streams: ["*"] }]),
      ENTRA_JWKS_URI: "http://127.0.0.1:5000/keys",
    });
    expect(local.entra!.endpoints.jwksUri).toBe("http://127.0.0.1:5000/keys");
  });

  it.each<[string, Record<string, string>, string]>([
    ["bad JSON", { SERVICE_SAS_POLICIES: "[{" }, "SERVICE_SAS_POLICIES: is not valid JSON"],
    [
      "not an array",
      { SERVICE_SAS_POLICIES: "{}" },
      "SERVICE_SAS_POLICIES: must be a JSON array of policy objects",
    ],
    [
      "a short key",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ name: "ops", primaryKey: SHORT_KEY })]) },
      "SERVICE_SAS_POLICIES: policy 'ops' (#0): primaryKey: must be base64 of at least 32 bytes",
    ],
    [
      "a bad secondary key",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy(), policy({ name: "b", secondaryKey: "%%%" })]) },
      "SERVICE_SAS_POLICIES: policy 'b' (#1): secondaryKey: must be base64 of at least 32 bytes",
    ],
    [
      "a missing name",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ name: undefined })]) },
      "SERVICE_SAS_POLICIES: policy #0: name: Invalid input: expected string, received undefined",
    ],
    [
      "a duplicate name",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy(), policy()]) },
      "SERVICE_SAS_POLICIES: policy 'service' (#1): name 'service' appears more than once",
    ],
    [
      "a typo'd field",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ device: ["x"] })]) },
      "SERVICE_SAS_POLICIES: policy 'service' (#0): Unrecognized key: \"device\"",
    ],
    [
      "a bad device pattern",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ devices: ["a/b/c"] })]) },
      "SERVICE_SAS_POLICIES: policy 'service' (#0): devices.0: pattern 'a/b/c' has more than one '/' (expected device or device/module)",
    ],
    [
      "no streams",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ streams: [] })]) },
      "SERVICE_SAS_POLICIES: policy 'service' (#0): streams: list at least one stream name (or \"*\")",
    ],
    [
      "an unknown action",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ actions: ["delete"] })]) },
      'SERVICE_SAS_POLICIES: policy \'service\' (#0): actions.0: Invalid option: expected one of "open"|"list"|"show"|"close"',
    ],
    [
      "a caller limit below 1",
      { SERVICE_SAS_POLICIES: JSON.stringify([policy({ maxStreamsPerDevice: 0 })]) },
      "SERVICE_SAS_POLICIES: policy 'service' (#0): maxStreamsPerDevice: Too small: expected number to be >=1",
    ],
    [
      "a role's fractional caller limit",
      {
        ENTRA_TENANT_ID: TENANT,
        ENTRA_AUDIENCE: "a",
        ENTRA_ROLES: JSON.stringify([
          { role: "gw", devices: ["*"], streams: ["*"], maxStreamsPerDevice: 2.5 },
        ]),
      },
      "ENTRA_ROLES: role 'gw' (#0): maxStreamsPerDevice: Invalid input: expected int, received number",
    ],
    [
      "a SAS lifetime under a minute",
      { SERVICE_SAS_MAX_LIFETIME_SECONDS: "59", SERVICE_SAS_POLICIES: JSON.stringify([policy()]) },
      "SERVICE_SAS_MAX_LIFETIME_SECONDS: Too small: expected number to be >=60",
    ],
    [
      "an IoT Hub resource",
      { SERVICE_SAS_RESOURCE: "myhub.azure-devices.net", SERVICE_SAS_POLICIES: JSON.stringify([policy()]) },
      "SERVICE_SAS_RESOURCE: must be this service's host name, never an IoT Hub's",
    ],
    [
      "a role without a name",
      {
        ENTRA_TENANT_ID: TENANT,
        ENTRA_AUDIENCE: "a",
        ENTRA_ROLES: JSON.stringify([{ role: "", devices: ["*"], streams: ["*"] }]),
      },
      "ENTRA_ROLES: role #0: role: must not be empty",
    ],
    [
      "a tenant that is not a GUID",
      { ENTRA_TENANT_ID: "contoso.onmicrosoft.com", ENTRA_AUDIENCE: "a", ENTRA_ROLES: "[]" },
      "ENTRA_TENANT_ID: must be the tenant's id (a GUID)",
    ],
    [
      "a plain-http key set elsewhere than loopback",
      { ENTRA_JWKS_URI: "http://keys.example/keys" },
      "ENTRA_JWKS_URI: must be an https URL (http only for localhost)",
    ],
  ])("reports %s, naming the setting, entry and field", (_label, env, message) => {
    expect(problems(env)).toContain(message);
  });

  it.each<[string, Record<string, string>, string]>([
    [
      "nothing configured",
      {},
      "SERVICE_SAS_POLICIES: no service authentication is configured; set SAS policies and/or ENTRA_AUDIENCE with ENTRA_ROLES",
    ],
    [
      "an audience without roles",
      { ENTRA_TENANT_ID: TENANT, ENTRA_AUDIENCE: "a" },
      "ENTRA_ROLES: required when ENTRA_AUDIENCE is set (no role, no access)",
    ],
    [
      "an audience without a tenant",
      { ENTRA_AUDIENCE: "a", ENTRA_ROLES: JSON.stringify([{ role: "r", devices: ["*"], streams: ["*"] }]) },
      "ENTRA_TENANT_ID: required for Entra ID tokens (ENTRA_AUDIENCE or RELAY_EVENTS_PRINCIPAL_ID)",
    ],
    [
      "a relay audience without the pinned identity",
      { ENTRA_TENANT_ID: TENANT, RELAY_EVENTS_AUDIENCE: "x" },
      "RELAY_EVENTS_PRINCIPAL_ID: required when RELAY_EVENTS_AUDIENCE is set (issuer and audience alone do not identify Web PubSub)",
    ],
    [
      "a pinned identity without an audience",
      { ENTRA_TENANT_ID: TENANT, RELAY_EVENTS_PRINCIPAL_ID: WPS },
      "RELAY_EVENTS_AUDIENCE: required when RELAY_EVENTS_PRINCIPAL_ID is set",
    ],
    [
      "an unused tenant",
      { ENTRA_TENANT_ID: TENANT, SERVICE_SAS_POLICIES: JSON.stringify([policy()]) },
      "ENTRA_TENANT_ID: set, but neither ENTRA_AUDIENCE nor RELAY_EVENTS_PRINCIPAL_ID uses it",
    ],
  ])("reports %s", (_label, env, message) => {
    expect(problems(env)).toContain(message);
  });

  it("never repeats a key in a message", () => {
    const secret = randomBytes(20).toString("base64");
    const all = problems({
      SERVICE_SAS_POLICIES: JSON.stringify([policy({ primaryKey: secret, secondaryKey: 42 })]),
    }).join("\n");
    expect(all).toMatch(/primaryKey/);
    expect(all).not.toContain(secret);
  });
});

describe("wiring from configuration", () => {
  it("builds a chain that takes SAS and Entra tokens, and a relay authenticator", async () => {
    const key = await newSigningKey();
    const server = new JwksServer([key]);
    const jwksUri = await server.start();
    try {
      const config = ok({
        SERVICE_SAS_RESOURCE: "func-x.azurewebsites.net",
        SERVICE_SAS_POLICIES: JSON.stringify([policy()]),
        ENTRA_TENANT_ID: TENANT,
        ENTRA_AUDIENCE: "api://ds",
        ENTRA_ROLES: JSON.stringify([{ role: "Streams.Operator", devices: ["*"], streams: ["*"] }]),
        ENTRA_JWKS_URI: jwksUri,
        RELAY_EVENTS_PRINCIPAL_ID: WPS,
        RELAY_EVENTS_AUDIENCE: "api://ds-events",
      });
      const keySets = new KeySets();
      const chain = createServiceAuthChain(config, { keySets });
      const headers = (authorization: string) =>
        new HttpRequest({ method: "GET", url: "http://localhost/api/x", headers: { authorization } }).headers;

      const sas = mintSasToken({
        resource: "func-x.azurewebsites.net",
        policyName: "service",
        key: KEY,
        ttlSeconds: 60,
      });
      expect(await chain.authenticate(headers(sas))).toMatchObject({ kind: "sas", policyName: "service" });

      const iss = config.entra!.endpoints.issuers[1];
      const jwt = await signJwt(key, { iss, aud: "api://ds", oid: "o", roles: ["Streams.Operator"] });
      expect(await chain.authenticate(headers(`Bearer ${jwt}`))).toMatchObject({
        kind: "entra",
        objectId: "o",
      });

      const err: unknown = await chain.authenticate(headers("Digest abc")).catch((e: unknown) => e);
      expect(err).toMatchObject({
        statusCode: 401,
        message: "authorization scheme 'Digest' is not accepted; supported: SharedAccessSignature or Bearer",
      });
      expect(err).toBeInstanceOf(ApiError);

      const relay = createRelayEventAuthenticator(config, ["wps-key"], "ds.webpubsub.azure.com", { keySets });
      const eventHeaders = (h: Record<string, string>) =>
        new HttpRequest({ method: "POST", url: "http://localhost/api/relay/events", headers: h }).headers;
      expect(
        relay.abuseProtection(eventHeaders({ "webhook-request-origin": "ds.webpubsub.azure.com" })),
      ).toMatchObject({
        "WebHook-Allowed-Origin": "ds.webpubsub.azure.com",
      });
      expect(
        await relay.authenticate(
          eventHeaders({ "ce-connectionid": "c1", "ce-signature": signConnectionId("wps-key", "c1") }),
        ),
      ).toEqual({ method: "signature" });
      const miToken = await signJwt(key, { iss, aud: "api://ds-events", oid: WPS });
      expect(await relay.authenticate(eventHeaders({ authorization: `Bearer ${miToken}` }))).toEqual({
        method: "managedIdentity",
        principalId: WPS,
      });
      // Both verifiers share one key set: fetched once.
      expect(server.hits).toBe(1);
    } finally {
      await server.close();
    }
  });

  it("leaves Bearer out of the chain when Entra ID is not configured", async () => {
    const chain = createServiceAuthChain(ok({ SERVICE_SAS_POLICIES: JSON.stringify([policy()]) }));
    const headers = new HttpRequest({
      method: "GET",
      url: "http://localhost/x",
      headers: { authorization: "Bearer a.b.c" },
    }).headers;
    await expect(chain.authenticate(headers)).rejects.toMatchObject({
      statusCode: 401,
      message: "authorization scheme 'Bearer' is not accepted; supported: SharedAccessSignature",
    });
  });
});
