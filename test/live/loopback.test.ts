/**
 * The live target's code without Azure: pointed at the in-process emulators (test/live/loopback.ts),
 * it registers identities through azure-iothub's Registry, connects them with the hub-generated keys,
 * runs streams through the deployed-style control plane, and deletes exactly what it created.
 * (`DEVICESTREAMS_TARGET=loopback npx jest test/sdk/streams.test.ts` runs the whole SDK suite this way.)
 */
import { randomBytes } from "node:crypto";
import { rejection } from "../emulators/iothub/helpers";
import { echo, roundTrip, sha256 } from "../sdk/helpers";
import { type Stack, startStack } from "../sdk/stack";
import { loopbackConfig } from "./loopback";
import { runPrefix, startLiveTarget } from "./target";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

describe("the live target on the local emulators", () => {
  it("opens streams to a device and a module it registered, then deletes both identities", async () => {
    const live = await startLiveTarget(loopbackConfig(stack));
    const deviceId = live.deviceId("Loop-Dev");
    expect(deviceId).toMatch(/^dslive-[0-9a-f]{8}-Loop-Dev$/);
    expect(live.relayPolicy).toEqual({ allowedHosts: [stack.relayHost], allowInsecure: true });

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
