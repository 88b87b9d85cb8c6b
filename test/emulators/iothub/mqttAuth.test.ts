/**
 * The device-facing MQTT surface and service authentication: SAS checks on both sides, one
 * connection per identity, topic confinement (raw mqtt.js, since the SDK only uses its own topics),
 * keepalive, and malformed device answers.
 */
import { once } from "node:events";
import { connect as tlsConnect } from "node:tls";
import { connect as mqttConnect, type IClientOptions, type MqttClient } from "mqtt";
import { generate as generatePacket } from "mqtt-packet";
import { SharedAccessSignature, anHourFromNow } from "azure-iot-common";
import { Client as DeviceClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { Amqp, Client as ServiceClient, Registry } from "azure-iothub";
import { RestApiClient } from "azure-iothub/dist/common-http/rest_api_client";
import { DEV_POLICY, startIotHubEmulator, type IotHubEmulator } from "../../../emulators/iothub";
import { IotHubDirectMethodInvoker, PortAwareHttp, createIotHubClients } from "../../../shared/iothub";
import { Devices, rejection } from "./helpers";

let hub: IotHubEmulator;
const lines: string[] = [];
const devices = new Devices(() => hub);
const raws = new Set<MqttClient>();
let invoker: IotHubDirectMethodInvoker;

beforeAll(async () => {
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, log: (line) => lines.push(line) });
  invoker = new IotHubDirectMethodInvoker(
    createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem }).client,
  );
});

afterAll(async () => {
  await devices.closeAll();
  await Promise.all([...raws].map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
  await hub.close();
});

const field = (cs: string, name: string) => new RegExp(`${name}=([^;]+)`).exec(cs)?.[1] ?? "";
const deviceToken = (resource: string, key: string, expiry = anHourFromNow()) =>
  SharedAccessSignature.create(encodeURIComponent(resource), "", key, expiry).toString();
const call = { methodName: "m", payload: null, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 };

/** A raw MQTT 3.1.1 client speaking as `deviceId` with a valid SAS unless told otherwise. */
async function raw(cs: string, overrides: Partial<IClientOptions> = {}): Promise<MqttClient> {
  const deviceId = field(cs, "DeviceId");
  const client = mqttConnect(`mqtts://127.0.0.1:${hub.mqttPort}`, {
    clientId: deviceId,
    username: `${hub.hubHostName}/${deviceId}/?api-version=2021-04-12`,
    password: deviceToken(`${hub.hubHostName}/devices/${deviceId}`, field(cs, "SharedAccessKey")),
    protocolVersion: 4,
    ca: hub.caPem,
    reconnectPeriod: 0,
    ...overrides,
  });
  raws.add(client);
  client.on("error", () => undefined);
  await once(client, "connect");
  return client;
}

function subscribe(client: MqttClient, topic: string, qos: 0 | 1 | 2 = 0): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    client.subscribe(topic, { qos }, (err, granted) => (err ? reject(err) : resolve(granted?.[0]?.qos)));
  });
}

describe("device authentication (device SDK)", () => {
  test("a wrong key is refused with UnauthorizedError", async () => {
    const cs = await hub.createDevice("wrong-key");
    const forged = cs.replace(field(cs, "SharedAccessKey"), Buffer.alloc(32, 1).toString("base64"));
    const err = await rejection(devices.device(forged));
    expect(err.name).toBe("UnauthorizedError");
    expect(
      lines.some((l) => l.startsWith("mqtt connect refused for 'wrong-key'") && l.includes("signature")),
    ).toBe(true);
  });

  test("an expired token is refused; the same token shape with a future expiry works", async () => {
    const cs = await hub.createDevice("tokens");
    // A token-only client has no GatewayHostName: its sr names the local endpoint, host:port.
    const resource = `localhost:${hub.mqttPort}/devices/tokens`;
    const key = field(cs, "SharedAccessKey");
    const expired = DeviceClient.fromSharedAccessSignature(deviceToken(resource, key, 1_000_000), Mqtt);
    const err = await rejection(devices.start(expired));
    expect(err.name).toBe("UnauthorizedError");
    expect(
      lines.some((l) => l.startsWith("mqtt connect refused for 'tokens'") && l.includes("expired")),
    ).toBe(true);
    const valid = DeviceClient.fromSharedAccessSignature(deviceToken(resource, key), Mqtt);
    await devices.start(valid);
    await valid.close();
  });

  test("an unregistered device is refused", async () => {
    const cs = await hub.createDevice("exists");
    const err = await rejection(devices.device(cs.replace("DeviceId=exists", "DeviceId=missing")));
    expect(err.name).toBe("UnauthorizedError");
  });

  test("a client that does not trust the development CA cannot connect", async () => {
    const cs = await hub.createDevice("untrusting");
    const client = DeviceClient.fromConnectionString(cs, Mqtt);
    client.on("error", () => undefined);
    await expect(client.open()).rejects.toThrow();
    await client.close();
  });
});

describe("one connection per identity", () => {
  test("a second connection with the same identity drops the first; calls reach the new one", async () => {
    const cs = await hub.createDevice("twice");
    const first = await devices.device(cs);
    first.onDeviceMethod("m", (_req, res) => void res.send(200, "first"));
    await expect(invoker.invoke({ deviceId: "twice" }, call)).resolves.toEqual({
      status: 200,
      payload: "first",
    });
    const dropped = once(first, "disconnect");
    const second = await devices.device(cs);
    second.onDeviceMethod("m", (_req, res) => void res.send(200, "second"));
    await dropped;
    await expect(invoker.invoke({ deviceId: "twice" }, call)).resolves.toEqual({
      status: 200,
      payload: "second",
    });
    expect(lines).toContain("mqtt disconnect twice (replaced by a newer connection)");
  });
});

describe("topic confinement (raw MQTT)", () => {
  test("a device may subscribe only to its own topics", async () => {
    const cs = await hub.createDevice("confined");
    await hub.createDevice("victim");
    const client = await raw(cs);
    expect(await subscribe(client, "devices/victim/messages/devicebound/#")).toBe(128);
    expect(await subscribe(client, "devices/+/messages/devicebound/#")).toBe(128);
    expect(await subscribe(client, "#")).toBe(128);
    expect(await subscribe(client, "$iothub/#")).toBe(128);
    expect(await subscribe(client, "devices/confined/messages/devicebound/#", 1)).toBe(1);
    expect(await subscribe(client, "$iothub/methods/POST/#")).toBe(0);
    expect(lines).toContain("mqtt subscribe denied for 'confined': devices/victim/messages/devicebound/#");
  });

  test("publishing on another identity's topic ends the connection", async () => {
    const cs = await hub.createDevice("trespasser");
    const client = await raw(cs);
    const closed = once(client, "close");
    client.publish("devices/victim/messages/events/", "x", { qos: 1 });
    await closed;
    expect(lines).toContain("mqtt disconnect trespasser (published to a topic it does not own)");
  });

  test("a method request reaches only the addressed device", async () => {
    const a = await raw(await hub.createDevice("raw-a"));
    const b = await raw(await hub.createDevice("raw-b"));
    const seen: Record<string, string[]> = { a: [], b: [] };
    const answer = (client: MqttClient, name: string) => {
      client.on("message", (topic: string) => {
        seen[name]!.push(topic);
        const rid = /\$rid=(\w+)/.exec(topic)?.[1];
        client.publish(`$iothub/methods/res/200/?$rid=${rid}`, JSON.stringify(name));
      });
    };
    answer(a, "a");
    answer(b, "b");
    await subscribe(a, "$iothub/methods/POST/#");
    await subscribe(b, "$iothub/methods/POST/#");
    await expect(invoker.invoke({ deviceId: "raw-a" }, { ...call, methodName: "forA" })).resolves.toEqual({
      status: 200,
      payload: "a",
    });
    await expect(invoker.invoke({ deviceId: "raw-b" }, { ...call, methodName: "forB" })).resolves.toEqual({
      status: 200,
      payload: "b",
    });
    expect(seen.a).toEqual([expect.stringMatching(/^\$iothub\/methods\/POST\/forA\/\?\$rid=\w+$/)]);
    expect(seen.b).toEqual([expect.stringMatching(/^\$iothub\/methods\/POST\/forB\/\?\$rid=\w+$/)]);
  });

  test("a device answer that is not JSON becomes a 502 for the caller", async () => {
    const client = await raw(await hub.createDevice("garbled"));
    client.on("message", (topic: string) => {
      const rid = /\$rid=(\w+)/.exec(topic)?.[1];
      client.publish(`$iothub/methods/res/200/?$rid=ffff`, "null"); // a stray rid is ignored
      client.publish(`$iothub/methods/res/200/?$rid=${rid}`, "{not json");
    });
    await subscribe(client, "$iothub/methods/POST/#");
    const err = await rejection(invoker.invoke({ deviceId: "garbled" }, call));
    expect(err).toMatchObject({ kind: "Upstream", statusCode: 502 });
    expect(lines.some((l) => l.includes("garbled") && l.includes("unknown or expired rid ffff"))).toBe(true);
  });

  test.each([
    ["no credentials", { username: undefined, password: undefined }, /username must be/],
    [
      "a username for another client",
      { username: "devicestreams.azure-devices.net/other/?api-version=1" },
      /username/,
    ],
    [
      "a username naming another hub",
      { username: "elsewhere.azure-devices.net/refused/?api-version=1" },
      /username/,
    ],
    ["a client ID that is not an identity", { clientId: "a/b/c" }, /client ID/],
    ["no password", { password: undefined }, /password must be a SAS token/],
    ["a password that is not a token", { password: "hunter2" }, /not a SharedAccessSignature/],
  ])("CONNECT with %s is refused", async (_label, overrides, reason) => {
    const cs = hub.connectionString("refused") ?? (await hub.createDevice("refused"));
    await expect(raw(cs, overrides as Partial<IClientOptions>)).rejects.toThrow(
      /Bad username or password|Not authorized/,
    );
    expect(lines.some((l) => l.startsWith("mqtt connect refused") && reason.test(l))).toBe(true);
  });

  test("a token whose sr names another hub, or carries a policy name, is refused", async () => {
    const cs = hub.connectionString("refused") ?? (await hub.createDevice("refused"));
    const key = field(cs, "SharedAccessKey");
    const otherHub = deviceToken("elsewhere.azure-devices.net/devices/refused", key);
    await expect(raw(cs, { password: otherHub })).rejects.toThrow(/Bad username or password/);
    const withPolicy = SharedAccessSignature.create(
      encodeURIComponent(`${hub.hubHostName}/devices/refused`),
      "device",
      key,
      anHourFromNow(),
    ).toString();
    await expect(raw(cs, { password: withPolicy })).rejects.toThrow(/Bad username or password/);
    expect(lines.some((l) => l.includes("policy (skn) tokens are not accepted"))).toBe(true);
  });

  test("a device answer over 128 KB becomes a 502 for the caller", async () => {
    const client = await raw(await hub.createDevice("verbose"));
    client.on("message", (topic: string) => {
      const rid = /\$rid=(\w+)/.exec(topic)?.[1];
      client.publish(`$iothub/methods/res/200/?$rid=${rid}`, JSON.stringify("x".repeat(128 * 1024)));
    });
    await subscribe(client, "$iothub/methods/POST/#");
    const err = await rejection(invoker.invoke({ deviceId: "verbose" }, call));
    expect(err).toMatchObject({ kind: "Upstream", statusCode: 502 });
    expect(err.message).toMatch(/larger than 128 KB/);
  });

  test("a token for another device does not open its session", async () => {
    const mine = await hub.createDevice("impostor");
    const theirs = await hub.createDevice("target");
    const attempt = raw(mine, {
      password: deviceToken(`${hub.hubHostName}/devices/target`, field(theirs, "SharedAccessKey")),
    });
    await expect(attempt).rejects.toThrow(/Bad username or password/);
  });
});

test("the server ends a connection whose client goes silent past 1.5 x keepalive", async () => {
  const cs = await hub.createDevice("quiet");
  const socket = tlsConnect({
    host: "127.0.0.1",
    port: hub.mqttPort,
    ca: hub.caPem,
    servername: "localhost",
  });
  await once(socket, "secureConnect");
  socket.write(
    generatePacket({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: false,
      keepalive: 1,
      clientId: "quiet",
      username: `${hub.hubHostName}/quiet/?api-version=2021-04-12`,
      password: Buffer.from(deviceToken(`${hub.hubHostName}/devices/quiet`, field(cs, "SharedAccessKey"))),
    }),
  );
  socket.on("data", () => undefined);
  await once(socket, "close");
  expect(lines).toContain("mqtt disconnect quiet (keepalive timeout)");
}, 15000);

describe("service authentication", () => {
  const wrongKey = () =>
    hub.serviceConnectionString.replace(DEV_POLICY.key, Buffer.alloc(32, 2).toString("base64"));

  test("a wrong key is 401: the adapter says Unauthorized, the Registry UnauthorizedError", async () => {
    const { client, registry } = createIotHubClients({ connectionString: wrongKey(), ca: hub.caPem });
    const err = await rejection(new IotHubDirectMethodInvoker(client).invoke({ deviceId: "x" }, call));
    expect(err).toMatchObject({ kind: "Unauthorized", statusCode: 401 });
    expect((await rejection(registry!.get("x"))).name).toBe("UnauthorizedError");
  });

  test("an expired service token is 401", async () => {
    const host = `localhost:${hub.httpsPort}`;
    const expired = SharedAccessSignature.create(host, DEV_POLICY.name, DEV_POLICY.key, 1_000_000).toString();
    const config = { host, sharedAccessSignature: expired };
    const rest = new RestApiClient(config, "test", new PortAwareHttp());
    const registry = new Registry(config, rest);
    const client = new ServiceClient(new Amqp(config), rest);
    rest.setOptions({ ca: hub.caPem });
    expect((await rejection(registry.get("x"))).name).toBe("UnauthorizedError");
    expect(
      (await rejection(new IotHubDirectMethodInvoker(client).invoke({ deviceId: "x" }, call))).kind,
    ).toBe("Unauthorized");
  });
});
