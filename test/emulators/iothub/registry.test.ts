/**
 * The registry through azure-iothub's Registry (devices, modules, twins, If-Match), the raw REST
 * edges the SDK never produces, and a restart on the same state directory.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { once } from "node:events";
import { SharedAccessSignature, anHourFromNow } from "azure-iot-common";
import type { Registry } from "azure-iothub";
import { DEV_POLICY, startIotHubEmulator, type IotHubEmulator } from "../../../emulators/iothub";
import { IotHubDirectMethodInvoker, createIotHubClients } from "../../../shared/iothub";
import { Devices, rejection } from "./helpers";

let hub: IotHubEmulator;
let registry: Registry;
const lines: string[] = [];
const devices = new Devices(() => hub);

beforeAll(async () => {
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, log: (line) => lines.push(line) });
  registry = createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem }).registry!;
});

afterAll(async () => {
  await devices.closeAll();
  await hub.close();
});

const status = (err: Record<string, unknown>) => (err.response as { statusCode: number }).statusCode;

describe("devices", () => {
  test("create fills in keys; get returns the same device; a duplicate create is 409", async () => {
    const { responseBody: created } = await registry.create({ deviceId: "reg-1" });
    expect(created.deviceId).toBe("reg-1");
    expect(created.status).toBe("enabled");
    expect(created.connectionState).toBe("Disconnected");
    const keys = created.authentication?.symmetricKey;
    expect(Buffer.from(keys?.primaryKey ?? "", "base64")).toHaveLength(32);
    expect(keys?.secondaryKey).not.toBe(keys?.primaryKey);
    const { responseBody: fetched } = await registry.get("reg-1");
    expect(fetched.authentication?.symmetricKey).toEqual(keys);
    expect(fetched.etag).toBe(created.etag);
    const err = await rejection(registry.create({ deviceId: "reg-1" }));
    expect(err.name).toBe("DeviceAlreadyExistsError");
    expect(status(err)).toBe(409);
    expect(err.message).toMatch(/already registered/);
  });

  test("keys given at creation are kept", async () => {
    const primaryKey = Buffer.alloc(32, 3).toString("base64");
    const secondaryKey = Buffer.alloc(32, 4).toString("base64");
    const { responseBody } = await registry.create({
      deviceId: "reg-keys",
      authentication: { symmetricKey: { primaryKey, secondaryKey } },
    });
    expect(responseBody.authentication?.symmetricKey).toEqual({ primaryKey, secondaryKey });
    const bad = await rejection(
      registry.create({ deviceId: "reg-badkey", authentication: { symmetricKey: { primaryKey: "short" } } }),
    );
    expect(bad.name).toBe("ArgumentError");
  });

  test("an invalid device ID is 400", async () => {
    const err = await rejection(registry.create({ deviceId: "has/slash" }));
    expect(err.name).toBe("ArgumentError");
  });

  test("disabling a device (If-Match *) ends its connection and refuses new ones; enabling restores it", async () => {
    const cs = await hub.createDevice("reg-toggle");
    const device = await devices.device(cs);
    const dropped = once(device, "disconnect");
    await registry.update({ deviceId: "reg-toggle", status: "disabled" });
    await dropped;
    expect(lines).toContain("mqtt disconnect reg-toggle (credentials or status changed)");
    expect((await rejection(devices.device(cs))).name).toBe("UnauthorizedError");
    await registry.update({ deviceId: "reg-toggle", status: "enabled" });
    await devices.device(cs);
    expect((await registry.get("reg-toggle")).responseBody.connectionState).toBe("Connected");
  });

  test("delete removes the device and its modules and ends their connections", async () => {
    const cs = await hub.createDevice("reg-gone");
    await hub.createModule("reg-gone", "mod");
    const device = await devices.device(cs);
    const dropped = once(device, "disconnect");
    await registry.delete("reg-gone");
    await dropped;
    expect((await rejection(registry.get("reg-gone"))).name).toBe("DeviceNotFoundError");
    expect(status(await rejection(registry.getModule("reg-gone", "mod")))).toBe(404);
    expect((await rejection(registry.delete("reg-gone"))).name).toBe("DeviceNotFoundError");
  });

  test("list and twin", async () => {
    await hub.createDevice("reg-twin");
    const { responseBody: list } = await registry.list();
    expect(list.map((d) => d.deviceId)).toContain("reg-twin");
    const { responseBody: twin } = await registry.getTwin("reg-twin");
    expect(twin.deviceId).toBe("reg-twin");
    expect(twin.properties.desired).toMatchObject({ $version: 1 });
    expect(twin.properties.reported).toMatchObject({ $version: 1 });
    expect((await rejection(registry.getTwin("no-twin"))).name).toBe("DeviceNotFoundError");
  });
});

describe("modules", () => {
  test("add, get, list, update with If-Match, remove", async () => {
    await hub.createDevice("reg-host");
    const { responseBody: added } = await registry.addModule({ deviceId: "reg-host", moduleId: "m1" });
    expect(added).toMatchObject({ deviceId: "reg-host", moduleId: "m1", connectionState: "Disconnected" });
    const { responseBody: module } = await registry.getModule("reg-host", "m1");
    expect(module.authentication?.symmetricKey?.primaryKey).toBe(
      added.authentication.symmetricKey.primaryKey,
    );
    const { responseBody: modules } = await registry.getModulesOnDevice("reg-host");
    expect(modules.map((m) => m.moduleId)).toEqual(["m1"]);
    expect(status(await rejection(registry.addModule({ deviceId: "reg-host", moduleId: "m1" })))).toBe(409);

    const updated = await registry.updateModule({ ...module, managedBy: "me" }, false);
    expect(updated.responseBody.managedBy).toBe("me");
    const stale = await rejection(registry.updateModule({ ...module, managedBy: "again" }, false));
    expect(stale.name).toBe("InvalidEtagError");
    expect(status(stale)).toBe(412);

    const { responseBody: twin } = await registry.getModuleTwin("reg-host", "m1");
    expect(twin).toMatchObject({ deviceId: "reg-host", moduleId: "m1" });
    await registry.removeModule("reg-host", "m1");
    expect(status(await rejection(registry.getModule("reg-host", "m1")))).toBe(404);
  });

  test("a module needs its device", async () => {
    const err = await rejection(registry.addModule({ deviceId: "no-host", moduleId: "m" }));
    expect(err.name).toBe("DeviceNotFoundError");
  });
});

describe("raw REST edges", () => {
  function send(
    method: string,
    path: string,
    options: { body?: string; auth?: string } = {},
  ): Promise<{ status: number; body: string; errorCode?: string }> {
    const host = `localhost:${hub.httpsPort}`;
    const auth =
      options.auth ??
      SharedAccessSignature.create(host, DEV_POLICY.name, DEV_POLICY.key, anHourFromNow()).toString();
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "localhost",
          port: hub.httpsPort,
          method,
          path,
          ca: hub.caPem,
          headers: { Authorization: auth },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString("utf8"),
              errorCode: res.headers["iothub-errorcode"] as string | undefined,
            }),
          );
        },
      );
      req.on("error", reject);
      req.end(options.body);
    });
  }

  test.each([
    ["GET", "/devices/x", {}, 400, /api-version/],
    ["GET", "/nothing?api-version=2021-04-12", {}, 404, /does not implement/],
    ["PUT", "/devices/raw?api-version=2021-04-12", { body: "{oops" }, 400, /not valid JSON/],
    ["PUT", "/devices/raw?api-version=2021-04-12", { body: "[1]" }, 400, /JSON object/],
    ["PATCH", "/devices/raw?api-version=2021-04-12", {}, 405, /not allowed/],
    ["GET", "/devices/%E0%A4%A?api-version=2021-04-12", {}, 400, /URL encoding/],
    ["GET", "/devices/x?api-version=2021-04-12", { auth: "Bearer abc" }, 401, /bearer/],
    [
      "GET",
      "/devices/x?api-version=2021-04-12",
      { auth: "SharedAccessSignature sr=x" },
      401,
      /needs sr, sig and se/,
    ],
  ])("%s %s %j is %i", async (method, path, options, expected, message) => {
    const res = await send(method, path, options);
    expect(res.status).toBe(expected);
    expect(res.body).toMatch(message);
    expect(res.errorCode).toBeDefined();
  });

  test("a body over the limit is 413", async () => {
    const res = await send("POST", "/twins/x/methods?api-version=2021-04-12", {
      body: "x".repeat(300 * 1024),
    });
    expect(res.status).toBe(413);
  });
});

test("a restart on the same state directory keeps identities, keys and the CA", async () => {
  const stateDir = await mkdtemp(path.join(tmpdir(), "iothub-restart-"));
  try {
    const first = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, stateDir });
    const deviceCs = await first.createDevice("survivor");
    const moduleCs = await first.createModule("survivor", "agent");
    const ca = first.caPem;
    await first.close();

    const second = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, stateDir });
    try {
      expect(second.caPem).toBe(ca);
      const key = (cs: string | undefined) => /SharedAccessKey=([^;]+)/.exec(cs ?? "")?.[1];
      expect(key(second.connectionString("survivor"))).toBe(key(deviceCs));
      expect(key(second.connectionString("survivor", "agent"))).toBe(key(moduleCs));
      const { client, registry: reg } = createIotHubClients({
        connectionString: second.serviceConnectionString,
        ca: second.caPem,
      });
      expect((await reg!.get("survivor")).responseBody.deviceId).toBe("survivor");
      await expect(second.createDevice("survivor")).rejects.toThrow(/already registered/);
      const restarted = new Devices(() => second);
      try {
        const device = await restarted.device(second.connectionString("survivor")!);
        device.onDeviceMethod("ping", (_req, res) => void res.send(200, "pong"));
        await expect(
          new IotHubDirectMethodInvoker(client).invoke(
            { deviceId: "survivor" },
            { methodName: "ping", payload: null, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 },
          ),
        ).resolves.toEqual({ status: 200, payload: "pong" });
      } finally {
        await restarted.closeAll();
      }
    } finally {
      await second.close();
    }
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});

test("a device SDK client with its default retry policy comes back after an emulator restart", async () => {
  const stateDir = await mkdtemp(path.join(tmpdir(), "iothub-reconnect-"));
  let current = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, stateDir });
  const ports = { mqttPort: current.mqttPort, httpsPort: current.httpsPort };
  const fleet = new Devices(() => current);
  // The connect timeout covers the SDK's lazy subscription, then its reconnect backoff and re-subscription.
  const ping = () =>
    new IotHubDirectMethodInvoker(
      createIotHubClients({ connectionString: current.serviceConnectionString, ca: current.caPem }).client,
    ).invoke(
      { deviceId: "phoenix" },
      { methodName: "ping", payload: null, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 10 },
    );
  try {
    const device = await fleet.device(await current.createDevice("phoenix"), { retry: true });
    device.onDeviceMethod("ping", (_req, res) => void res.send(200, "pong"));
    await expect(ping()).resolves.toEqual({ status: 200, payload: "pong" });
    await current.close();
    current = await startIotHubEmulator({ ...ports, stateDir });
    await expect(ping()).resolves.toEqual({ status: 200, payload: "pong" });
  } finally {
    await fleet.closeAll();
    await current.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}, 20000);

test("a port already in use fails the start cleanly, with the address in the error", async () => {
  await expect(startIotHubEmulator({ mqttPort: hub.mqttPort, httpsPort: 0 })).rejects.toThrow(/EADDRINUSE/);
  await expect(startIotHubEmulator({ mqttPort: 0, httpsPort: hub.httpsPort })).rejects.toThrow(/EADDRINUSE/);
});
