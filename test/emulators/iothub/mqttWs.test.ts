/**
 * MQTT over WebSockets: the official device SDK's `MqttWs` (which always dials
 * `wss://<GatewayHostName or HostName>:443/$iothub/websocket`) reaches the emulator's HTTPS port
 * through an HTTPS proxy that maps `localhost:443` to it, with the same SAS authentication and
 * direct methods as MQTT over TLS.
 */
import type { Agent } from "node:https";
import { Client, type DeviceClientOptions } from "azure-iot-device";
import { MqttWs } from "azure-iot-device-mqtt";
import { HttpsProxyAgent } from "https-proxy-agent";
import WebSocket from "ws";
import { startIotHubEmulator, type IotHubEmulator } from "../../../emulators/iothub";
import { IotHubDirectMethodInvoker, createIotHubClients } from "../../../shared/iothub";
import { type ConnectProxy, startConnectProxy } from "../../helpers/connectProxy";
import { Recorder, deferred, withDeadline } from "../../helpers/events";
import { Devices, rejection } from "./helpers";

let hub: IotHubEmulator;
let proxy: ConnectProxy;
let invoker: IotHubDirectMethodInvoker;
const lines = new Recorder<string>();
const devices = new Devices(() => hub);

/** The emulator's connection string for MqttWs: a gateway host without a port (the SDK appends :443). */
const overWebSockets = (cs: string) => cs.replace(/GatewayHostName=[^;]+/, "GatewayHostName=localhost");

const viaProxy = (): DeviceClientOptions => ({
  mqtt: { webSocketAgent: new HttpsProxyAgent(proxy.url) as unknown as Agent },
});

beforeAll(async () => {
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, log: lines.push });
  proxy = await startConnectProxy({ "localhost:443": { host: "127.0.0.1", port: hub.httpsPort } });
  invoker = new IotHubDirectMethodInvoker(
    createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem }).client,
  );
});

afterAll(async () => {
  await devices.closeAll();
  await hub.close();
  await proxy.close();
});

const call = {
  methodName: "echo",
  payload: { n: 7 },
  responseTimeoutInSeconds: 5,
  connectTimeoutInSeconds: 5,
};

test("MqttWs through an HTTPS proxy connects, receives a direct method and answers it", async () => {
  const cs = overWebSockets(await hub.createDevice("ws-device"));
  const before = proxy.targets.items.length;
  const device = await devices.start(Client.fromConnectionString(cs, MqttWs), { clientOptions: viaProxy() });
  device.onDeviceMethod("echo", (request, response) => {
    void response.send(200, { got: request.payload as unknown, method: request.methodName });
  });
  await expect(invoker.invoke({ deviceId: "ws-device" }, call)).resolves.toEqual({
    status: 200,
    payload: { got: { n: 7 }, method: "echo" },
  });
  expect(proxy.targets.items.slice(before)).toEqual(["localhost:443"]);
  expect(lines.items).toContainEqual(
    expect.stringMatching(/^mqtt connect ws-device from 127\.0\.0\.1:\d+ \(websocket\)/),
  );
});

test("MqttWs with a wrong key is refused with UnauthorizedError", async () => {
  const cs = overWebSockets(await hub.createDevice("ws-wrong-key"));
  const before = proxy.targets.items.length;
  const forged = cs.replace(
    /SharedAccessKey=[^;]+/,
    `SharedAccessKey=${Buffer.alloc(32, 1).toString("base64")}`,
  );
  const err = await rejection(
    devices.start(Client.fromConnectionString(forged, MqttWs), { clientOptions: viaProxy() }),
  );
  expect(err.name).toBe("UnauthorizedError");
  await lines.waitFor(
    (l) =>
      l.some((x) => /^mqtt connect refused for 'ws-wrong-key' from .*\(websocket\): .*signature/.test(x)),
    "the refusal in the log",
  );
  expect(proxy.targets.items.slice(before)).toEqual(["localhost:443"]);
});

describe("the WebSocket endpoint on the HTTPS port", () => {
  /** Opens a raw WebSocket straight to the emulator; resolves with the HTTP status it was refused with, or 101. */
  function handshake(path: string, protocols: string[]): Promise<number> {
    const ws = new WebSocket(`wss://127.0.0.1:${hub.httpsPort}${path}`, protocols, { ca: hub.caPem });
    const outcome = deferred<number>();
    ws.on("unexpected-response", (_req, res) => {
      outcome.resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on("open", () => {
      outcome.resolve(101);
      ws.close();
    });
    ws.on("error", (err) => outcome.reject(err));
    return withDeadline(outcome.promise, 5000, `handshake on ${path}`);
  }

  test("accepts /$iothub/websocket with the mqtt subprotocol only", async () => {
    await expect(handshake("/$iothub/websocket", ["mqtt"])).resolves.toBe(101);
    await expect(handshake("/$iothub/websocket", ["mqttv3.1"])).resolves.toBe(400);
    await expect(handshake("/$iothub/websocket", [])).resolves.toBe(400);
    await expect(handshake("/devices", ["mqtt"])).resolves.toBe(404);
  });
});

test("closing the emulator ends its MqttWs connections", async () => {
  const own = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
  const ownProxy = await startConnectProxy({ "localhost:443": { host: "127.0.0.1", port: own.httpsPort } });
  const client = Client.fromConnectionString(overWebSockets(await own.createDevice("ws-closing")), MqttWs);
  let closing: Promise<void> | undefined;
  try {
    const ownDevices = new Devices(() => own);
    await ownDevices.start(client, {
      clientOptions: { mqtt: { webSocketAgent: new HttpsProxyAgent(ownProxy.url) as unknown as Agent } },
    });
    const disconnected = new Promise((resolve) => client.once("disconnect", resolve));
    closing = own.close();
    await withDeadline(closing, 5000, "emulator close");
    await withDeadline(disconnected, 5000, "the device's disconnect");
  } finally {
    await client.close().catch(() => undefined);
    await ownProxy.close();
    await (closing ?? own.close()).catch(() => undefined);
  }
});
