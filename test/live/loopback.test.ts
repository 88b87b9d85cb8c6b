/**
 * The live target's code without Azure: pointed at the in-process emulators (test/live/loopback.ts),
 * it registers identities through azure-iothub's Registry, connects them with the hub-generated keys,
 * runs streams through the deployed-style control plane, and deletes exactly what it created.
 * (`DEVICESTREAMS_TARGET=loopback npx jest test/sdk/streams.test.ts` runs the whole SDK suite this way.)
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { TokenCredential } from "@azure/core-auth";
import { JwksServer, type SigningKey, newSigningKey, signJwt } from "../auth/support/jwks";
import { rejection } from "../emulators/iothub/helpers";
import { createRaw, echo, roundTrip, sha256 } from "../sdk/helpers";
import { type Stack, startStack } from "../sdk/stack";
import { loopbackConfig } from "./loopback";
import { runPrefix, startLiveTarget } from "./target";

// The control plane accepts SAS and, as a deployment does, Entra tokens: here from a test issuer.
const TENANT = randomUUID();
const ISSUER = `https://login.microsoftonline.com/${TENANT}/v2.0`;
const AUDIENCE = "api://device-streams-live-test";
let key: SigningKey;
let jwks: JwksServer;
let stack: Stack;
beforeAll(async () => {
  key = await newSigningKey();
  jwks = new JwksServer([key]);
  stack = await startStack({
    ENTRA_TENANT_ID: TENANT,
    ENTRA_AUDIENCE: AUDIENCE,
    ENTRA_ROLES: JSON.stringify([{ role: "Streams.Operator", devices: ["*", "*/*"], streams: ["*"] }]),
    ENTRA_JWKS_URI: await jwks.start(),
    ENTRA_ISSUER: ISSUER,
  });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await jwks?.close();
});

describe("the live target on the local emulators", () => {
  it("opens streams to a device and a module it registered, then deletes both identities", async () => {
    const live = await startLiveTarget(loopbackConfig(stack));
    const deviceId = live.deviceId("Loop-Dev");
    expect(deviceId).toMatch(/^dslive-[0-9a-f]{8}-Loop-Dev$/);
    expect(live.relayPolicy).toEqual({
      endpoint: stack.relayEndpoint,
      hub: stack.relayHub,
      allowInsecure: true,
    });

    const device = await live.device(deviceId);
    live.listen(device, { onRequest: () => ({ accept: true }) }).on("stream", (s) => s.on("channel", echo));
    const agent = await live.module(deviceId, "streams-agent");
    live
      .listen(agent, { onRequest: () => ({ accept: true, data: { from: "module" } }) })
      .on("stream", (s) => s.on("channel", echo));
    // The identities are in the emulator's registry, with the keys the hub generated.
    expect(stack.hub.connectionString(deviceId)).toContain(`DeviceId=${deviceId}`);
    expect(stack.hub.connectionString(deviceId, "streams-agent")).toContain("ModuleId=streams-agent");

    const service = live.client();
    for (const moduleId of [undefined, "streams-agent"]) {
      const stream = await service.openStream(deviceId, "echo", moduleId ? { moduleId } : {});
      expect(stream.moduleId).toBe(moduleId);
      const payload = randomBytes(50_000);
      expect(sha256(await roundTrip(await stream.openChannel(), payload, 4099))).toBe(sha256(payload));
      expect((await stream.close()).reason).toBe("Normal");
    }

    // Registered but never connected: the control plane tells it apart from an unknown ID.
    await live.registerDevice(live.deviceId("Loop-Offline"));
    expect(await rejection(service.openStream(live.deviceId("Loop-Offline"), "echo"))).toMatchObject({
      code: "DeviceNotOnline",
    });

    expect([...live.created].sort()).toEqual([deviceId, live.deviceId("Loop-Offline")].sort());
    await live.close();
    expect(stack.hub.connectionString(deviceId)).toBeUndefined();
    expect(stack.hub.connectionString(deviceId, "streams-agent")).toBeUndefined();
    expect(stack.hub.connectionString(live.deviceId("Loop-Offline"))).toBeUndefined();
  });

  it("Entra: the control plane is called with tokens for the configured scope", async () => {
    const scopes: string[] = [];
    const credential: TokenCredential = {
      getToken: async (requested) => {
        scopes.push(...[requested].flat());
        const claims = { iss: ISSUER, aud: AUDIENCE, tid: TENANT, oid: randomUUID(), azp: randomUUID() };
        return {
          token: await signJwt(key, { ...claims, roles: ["Streams.Operator"] }),
          expiresOnTimestamp: Date.now() + 3_600_000,
        };
      },
    };
    const scope = `${AUDIENCE}/.default`;
    const live = await startLiveTarget({
      ...loopbackConfig(stack),
      controlPlane: { endpoint: stack.host.url, tokenScope: scope, credential },
    });
    expect(live.serviceEnv).toEqual({
      DEVICESTREAM_CONNECTION_STRING: "",
      DEVICESTREAM_ENDPOINT: new URL(stack.host.url).origin,
      DEVICESTREAM_SCOPE: scope,
    });
    const deviceId = live.deviceId("Loop-Entra");
    live
      .listen(await live.device(deviceId), { onRequest: () => ({ accept: true }) })
      .on("stream", (s) => s.on("channel", echo));
    const stream = await live.client().openStream(deviceId, "echo");
    const payload = randomBytes(20_000);
    expect(sha256(await roundTrip(await stream.openChannel(), payload, 1000))).toBe(sha256(payload));
    await stream.close();
    // Raw REST calls carry the same kind of token.
    expect(await live.authorization()).toMatch(/^Bearer ey/);
    const raw = await createRaw(live, deviceId, "echo");
    expect(raw.status).toBe(201);
    await live.client().closeStream(deviceId, raw.body.streamId);
    expect(scopes.length).toBeGreaterThan(0);
    expect(new Set(scopes)).toEqual(new Set([scope]));
    await live.close();

    // The tokens are verified, not waved through: one for another audience is refused.
    const wrong = await startLiveTarget({
      ...loopbackConfig(stack),
      controlPlane: {
        endpoint: stack.host.url,
        tokenScope: scope,
        credential: {
          getToken: async () => ({
            token: await signJwt(key, {
              iss: ISSUER,
              aud: "api://other",
              tid: TENANT,
              roles: ["Streams.Operator"],
            }),
            expiresOnTimestamp: Date.now() + 3_600_000,
          }),
        },
      },
    });
    expect(await rejection(wrong.client().openStream(deviceId, "echo"))).toMatchObject({ statusCode: 401 });
    await wrong.close();
  });

  it("never touches an identity outside its run's prefix", async () => {
    await stack.hub.createDevice("Someone-Elses-Device");
    const live = await startLiveTarget(loopbackConfig(stack));
    await expect(live.device("Someone-Elses-Device")).rejects.toThrow(/lacks this run's prefix/);
    await expect(live.registerDevice("Someone-Elses-Device")).rejects.toThrow(/lacks this run's prefix/);
    await live.close();
    expect(stack.hub.connectionString("Someone-Elses-Device")).toBeDefined();
  });

  it("run prefixes are unique and keep device IDs legal", () => {
    const prefixes = new Set(Array.from({ length: 100 }, () => runPrefix()));
    expect(prefixes.size).toBe(100);
    for (const p of prefixes) expect(p).toMatch(/^[a-z0-9-]+$/);
  });
});
