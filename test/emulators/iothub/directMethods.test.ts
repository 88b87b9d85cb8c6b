/**
 * Direct methods end to end: the real service SDK and the control plane's adapter on one side, the
 * real device SDK (device and module) on the other, the emulator in between.
 */
import type { Client as ServiceClient } from "azure-iothub";
import { DEV_POLICY, startIotHubEmulator, type IotHubEmulator } from "../../../emulators/iothub";
import {
  DirectMethodError,
  IotHubDirectMethodInvoker,
  createIotHubClients,
  parseIotHubErrorBody,
} from "../../../shared/iothub";
import { Devices, rejection } from "./helpers";

let hub: IotHubEmulator;
let service: ServiceClient;
let invoker: IotHubDirectMethodInvoker;
const lines: string[] = [];
const devices = new Devices(() => hub);
const deviceKeys: string[] = [];

async function register(deviceId: string, moduleId?: string): Promise<string> {
  const cs =
    moduleId === undefined ? await hub.createDevice(deviceId) : await hub.createModule(deviceId, moduleId);
  deviceKeys.push(/SharedAccessKey=([^;]+)/.exec(cs)?.[1] ?? "");
  return cs;
}

beforeAll(async () => {
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, log: (line) => lines.push(line) });
  const clients = createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem });
  service = clients.client;
  invoker = new IotHubDirectMethodInvoker(
    createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem }).client,
  );
});

afterAll(async () => {
  await devices.closeAll();
  await hub.close();
});

const call = {
  methodName: "echo",
  payload: { n: 1 },
  responseTimeoutInSeconds: 5,
  connectTimeoutInSeconds: 5,
};

describe("a device that answers", () => {
  beforeAll(async () => {
    const device = await devices.device(await register("answers"));
    device.onDeviceMethod("echo", (request, response) => {
      void response.send(201, { got: request.payload as unknown, rid: request.requestId });
    });
    device.onDeviceMethod("fail", (_request, response) => void response.send(500, { error: "broken" }));
    device.onDeviceMethod("empty", (_request, response) => void response.send(200));
  });

  test("service SDK: accept returns the device's status and payload", async () => {
    const { result, message } = await service.invokeDeviceMethod("answers", { ...call });
    expect(message.statusCode).toBe(200);
    expect(result).toEqual({ status: 201, payload: { got: { n: 1 }, rid: expect.any(String) } });
  });

  test("adapter: accept, a null payload reaches the device as null", async () => {
    const result = await invoker.invoke({ deviceId: "answers" }, { ...call, payload: null });
    expect(result).toEqual({ status: 201, payload: { got: null, rid: expect.any(String) } });
  });

  test("a non-200 answer is still HTTP 200 with the device's status", async () => {
    const { result, message } = await service.invokeDeviceMethod("answers", { ...call, methodName: "fail" });
    expect(message.statusCode).toBe(200);
    expect(result).toEqual({ status: 500, payload: { error: "broken" } });
    await expect(invoker.invoke({ deviceId: "answers" }, { ...call, methodName: "fail" })).resolves.toEqual({
      status: 500,
      payload: { error: "broken" },
    });
  });

  test("an empty answer body means payload null", async () => {
    await expect(invoker.invoke({ deviceId: "answers" }, { ...call, methodName: "empty" })).resolves.toEqual({
      status: 200,
      payload: null,
    });
  });

  test("many concurrent calls each get their own answer", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => invoker.invoke({ deviceId: "answers" }, { ...call, payload: n })),
    );
    expect(results.map((r) => (r.payload as { got: number }).got)).toEqual(
      Array.from({ length: 20 }, (_, n) => n),
    );
  });

  test("a method with no handler gets 504101 after responseTimeoutInSeconds", async () => {
    const started = Date.now();
    const err = await rejection(invoker.invoke({ deviceId: "answers" }, { ...call, methodName: "nobody" }));
    expect(err).toBeInstanceOf(DirectMethodError);
    expect(err).toMatchObject({ kind: "Timeout", statusCode: 504, iotHubErrorCode: "504101" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
  }, 15000);
});

test("IDs with IoT Hub's special characters work end to end", async () => {
  const deviceId = "Dev#1?x'(y)+%:=@$!,.*_-";
  const device = await devices.device(await register(deviceId));
  device.onDeviceMethod("echo", (request, response) => void response.send(200, request.payload));
  await expect(invoker.invoke({ deviceId }, { ...call, payload: "odd" })).resolves.toEqual({
    status: 200,
    payload: "odd",
  });
});

describe("a module", () => {
  test("service SDK module overload and adapter reach ModuleClient.onMethod", async () => {
    await register("edge");
    const module = await devices.module(await register("edge", "agent"));
    module.onMethod(
      "whoami",
      (request, response) => void response!.send(200, { module: request!.methodName }),
    );
    const { result } = await service.invokeDeviceMethod("edge", "agent", { ...call, methodName: "whoami" });
    expect(result).toEqual({ status: 200, payload: { module: "whoami" } });
    await expect(
      invoker.invoke({ deviceId: "edge", moduleId: "agent" }, { ...call, methodName: "whoami" }),
    ).resolves.toEqual({ status: 200, payload: { module: "whoami" } });
    // The device itself is offline: the module's connection does not stand in for it.
    const err = await rejection(
      invoker.invoke({ deviceId: "edge" }, { ...call, connectTimeoutInSeconds: 0 }),
    );
    expect(err).toMatchObject({ kind: "DeviceNotOnline", iotHubErrorCode: "404103" });
  });
});

describe("unreachable identities", () => {
  test("an unknown device is 404001: DeviceNotFound", async () => {
    const err = await rejection(invoker.invoke({ deviceId: "ghost" }, call));
    expect(err).toMatchObject({
      name: "DirectMethodError",
      kind: "DeviceNotFound",
      statusCode: 404,
      iotHubErrorCode: "404001",
    });
    const sdkErr = await rejection(service.invokeDeviceMethod("ghost", "nomodule", { ...call }));
    expect((sdkErr.response as { statusCode: number }).statusCode).toBe(404);
    expect(parseIotHubErrorBody(sdkErr.responseBody).code).toBe("404001");
  });

  test("an unknown module of a registered device is 404010: ModuleNotFound", async () => {
    await register("has-no-module");
    const sdkErr = await rejection(service.invokeDeviceMethod("has-no-module", "ghost", { ...call }));
    expect((sdkErr.response as { statusCode: number }).statusCode).toBe(404);
    expect(parseIotHubErrorBody(sdkErr.responseBody).code).toBe("404010");
    // A module of a device that does not exist: the device is what is missing.
    const noDevice = await rejection(service.invokeDeviceMethod("ghost", "ghost", { ...call }));
    expect(parseIotHubErrorBody(noDevice.responseBody).code).toBe("404001");
  });

  test("';' is legal in device and module IDs: registry and method routes take it", async () => {
    const registry = createIotHubClients({
      connectionString: hub.serviceConnectionString,
      ca: hub.caPem,
    }).registry!;
    await registry.create({ deviceId: "semi;colon" });
    await registry.addModule({ deviceId: "semi;colon", moduleId: "mod;ule" });
    expect((await registry.get("semi;colon")).responseBody.deviceId).toBe("semi;colon");
    expect((await registry.getModule("semi;colon", "mod;ule")).responseBody.moduleId).toBe("mod;ule");
    const zero = { ...call, connectTimeoutInSeconds: 0 };
    // Registered and offline: 404103, so the route found the identity.
    for (const target of [{ deviceId: "semi;colon" }, { deviceId: "semi;colon", moduleId: "mod;ule" }]) {
      expect(await rejection(invoker.invoke(target, zero))).toMatchObject({ iotHubErrorCode: "404103" });
    }
  });

  test("a registered device that is offline is 404103 at once with connectTimeoutInSeconds 0", async () => {
    await register("offline");
    const err = await rejection(
      invoker.invoke({ deviceId: "offline" }, { ...call, connectTimeoutInSeconds: 0 }),
    );
    expect(err).toMatchObject({ kind: "DeviceNotOnline", statusCode: 404, iotHubErrorCode: "404103" });
  });

  test("a connected device that never subscribes to methods is 404103 after connectTimeoutInSeconds", async () => {
    await devices.device(await register("silent"));
    const err = await rejection(
      invoker.invoke({ deviceId: "silent" }, { ...call, connectTimeoutInSeconds: 1 }),
    );
    expect(err).toMatchObject({ kind: "DeviceNotOnline", iotHubErrorCode: "404103" });
  });

  test("a device that connects within connectTimeoutInSeconds gets the call", async () => {
    const cs = await register("late");
    const pending = invoker.invoke({ deviceId: "late" }, { ...call, connectTimeoutInSeconds: 10 });
    const device = await devices.device(cs);
    device.onDeviceMethod("echo", (_request, response) => void response.send(200, "late but here"));
    await expect(pending).resolves.toEqual({ status: 200, payload: "late but here" });
  });
});

describe("validation", () => {
  test.each([
    ["responseTimeoutInSeconds 4", { responseTimeoutInSeconds: 4 }, /responseTimeoutInSeconds/],
    ["responseTimeoutInSeconds 301", { responseTimeoutInSeconds: 301 }, /responseTimeoutInSeconds/],
    ["connectTimeoutInSeconds -1", { connectTimeoutInSeconds: -1 }, /connectTimeoutInSeconds/],
    ["a payload over 128 KB", { payload: "x".repeat(128 * 1024) }, /128 KB/],
    ["a method name with '/'", { methodName: "a/b" }, /methodName/],
  ])("the emulator answers 400 to %s", async (_label, change, message) => {
    // Straight through the SDK: the adapter would refuse these before sending.
    const err = await rejection(service.invokeDeviceMethod("answers", { ...call, ...change }));
    expect(err.name).toBe("ArgumentError");
    expect((err.response as { statusCode: number }).statusCode).toBe(400);
    expect(parseIotHubErrorBody(err.responseBody).message).toMatch(message);
  });

  test("a payload of exactly 128 KB is accepted", async () => {
    const payload = "x".repeat(128 * 1024 - 2); // JSON adds the two quotes
    const result = await invoker.invoke({ deviceId: "answers" }, { ...call, methodName: "empty", payload });
    expect(result).toEqual({ status: 200, payload: null });
  });
});

describe("rate limit", () => {
  test("beyond the configured rate, calls get 429 with Retry-After: Throttled", async () => {
    const limited = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, methodRateLimitPerSecond: 1 });
    try {
      const { client } = createIotHubClients({
        connectionString: limited.serviceConnectionString,
        ca: limited.caPem,
      });
      const throttledInvoker = new IotHubDirectMethodInvoker(client);
      const first = await rejection(throttledInvoker.invoke({ deviceId: "nobody" }, call));
      expect(first).toMatchObject({ kind: "DeviceNotFound" });
      const second = await rejection(throttledInvoker.invoke({ deviceId: "nobody" }, call));
      expect(second).toMatchObject({ kind: "Throttled", statusCode: 429, iotHubErrorCode: "429001" });
      expect(second.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.close();
    }
  });
});

test("log lines cover calls and results and never carry a key or signature", () => {
  expect(lines.some((l) => l.startsWith("mqtt connect answers"))).toBe(true);
  expect(lines.some((l) => l.startsWith("method call answers.echo"))).toBe(true);
  expect(lines.some((l) => /^method result answers\.nobody rid \w+: 504101/.test(l))).toBe(true);
  const text = lines.join("\n");
  for (const secret of [DEV_POLICY.key, ...deviceKeys]) expect(text).not.toContain(secret);
  expect(text).not.toMatch(/sig=|SharedAccessSignature/);
});
