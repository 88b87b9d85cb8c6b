/**
 * The whole local stack in process, for SDK and CLI tests: Azurite, the functions host serving the
 * route table, the Web PubSub emulator calling the relay-event route, and the IoT Hub emulator with
 * the official device SDK over MQTT. One per test file (beforeAll / afterAll via useStack()).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, ModuleClient, SharedAccessKeyAuthenticationProvider } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import { type AzuriteTable, startAzuriteTable } from "../../devstack/azurite";
import type { LocalHost } from "../../devstack/host";
import { startControlPlaneHost } from "../../devstack/controlPlaneHost";
import type { AppServices } from "../../shared/routes";
import { type IotHubEmulator, startIotHubEmulator } from "../../emulators/iothub";
import { type WebPubSubEmulator, startWebPubSubEmulator } from "../../emulators/webpubsub";
import { createServices } from "../../shared/app";
import { loadConfig } from "../../shared/config";
import { DeviceStreamListener, type DeviceStreamListenerOptions } from "../../client/sdk/device";
import { StreamsClient, type StreamsClientOptions } from "../../client/sdk/service";
import { KEYS, POLICIES } from "../helpers/controlPlane";
import { recordingLogger } from "../helpers/logger";

type DeviceLike = Client | ModuleClient;

export interface Stack {
  azurite: AzuriteTable;
  host: LocalHost;
  wps: WebPubSubEmulator;
  /** Replaced by restartHub(). */
  hub: IotHubEmulator;
  /**
   * Stops the IoT Hub emulator and starts it again on the same ports and state: every device client
   * loses its connection, and one with a retry policy reconnects.
   */
  restartHub(): Promise<void>;
  services: AppServices;
  log: ReturnType<typeof recordingLogger>;
  /** `Endpoint=...;SharedAccessKeyName=service;SharedAccessKey=...` for the control plane. */
  connectionString: string;
  /** The relay's host (`127.0.0.1:<port>`). */
  relayHost: string;
  /** The Web PubSub emulator's endpoint (`http://127.0.0.1:<port>`) and the hub: a device's relay policy. */
  relayEndpoint: string;
  relayHub: string;
  client(options?: StreamsClientOptions): StreamsClient;
  /** Registers (if needed) and connects a device identity; closed on teardown. */
  device(deviceId: string, options?: { retry?: boolean }): Promise<Client>;
  module(deviceId: string, moduleId: string): Promise<ModuleClient>;
  /** A listener on a new device client that allows the local relay over ws://. */
  listen(
    client: DeviceLike,
    options: Omit<DeviceStreamListenerOptions, "relay"> & { relay?: DeviceStreamListenerOptions["relay"] },
  ): DeviceStreamListener;
  close(): Promise<void>;
}

export async function startStack(env: Record<string, string> = {}): Promise<Stack> {
  const log = recordingLogger();
  const { host, eventHandler, attach } = await startControlPlaneHost({
    logger: { log: (level, msg, fields) => level === "error" && console.error(msg, fields) },
  });
  const relayHub = "streams";
  const wps = await startWebPubSubEmulator({ port: 0, eventHandlers: { [relayHub]: eventHandler } });
  const stateDir = await mkdtemp(join(tmpdir(), "sdk-stack-hub-"));
  let hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, stateDir });
  const azurite = await startAzuriteTable({ port: 0 });
  const sasResource = new URL(host.url).hostname;
  const config = loadConfig({
    TABLES_CONNECTION_STRING: azurite.connectionString,
    WEBPUBSUB_CONNECTION_STRING: wps.connectionString,
    WEBPUBSUB_HUB: relayHub,
    IOTHUB_CONNECTION_STRING: hub.serviceConnectionString,
    IOTHUB_CA_FILE: hub.caPath,
    SERVICE_SAS_POLICIES: JSON.stringify(POLICIES),
    SERVICE_SAS_RESOURCE: sasResource,
    ...env,
  });
  const services = await createServices(config, { logger: log.logger });
  attach(services);

  const open = new Set<DeviceLike>();
  const listeners = new Set<DeviceStreamListener>();
  const connectionString = `Endpoint=${host.url};SharedAccessKeyName=service;SharedAccessKey=${KEYS.service}`;
  const relayHost = new URL(wps.endpoint).host;
  const start = async <T extends DeviceLike>(client: T, retry = false): Promise<T> => {
    client.on("error", () => undefined);
    if (!retry) client.setRetryPolicy(new NoRetry());
    await client.setOptions({ ca: hub.caPem });
    open.add(client);
    await client.open();
    return client;
  };

  return {
    azurite,
    host,
    wps,
    get hub() {
      return hub;
    },
    restartHub: async () => {
      const { mqttPort, httpsPort } = hub;
      await hub.close();
      hub = await startIotHubEmulator({ mqttPort, httpsPort, stateDir });
    },
    services,
    log,
    connectionString,
    relayHost,
    relayEndpoint: wps.endpoint,
    relayHub,
    client: (options) => StreamsClient.fromConnectionString(connectionString, options),
    device: async (deviceId, options = {}) => {
      const cs = hub.connectionString(deviceId) ?? (await hub.createDevice(deviceId));
      return start(Client.fromAuthenticationProvider(keyProvider(cs, { deviceId }), Mqtt), options.retry);
    },
    module: async (deviceId, moduleId) => {
      if (!hub.connectionString(deviceId)) await hub.createDevice(deviceId);
      const cs = hub.connectionString(deviceId, moduleId) ?? (await hub.createModule(deviceId, moduleId));
      return start(ModuleClient.fromAuthenticationProvider(keyProvider(cs, { deviceId, moduleId }), Mqtt));
    },
    listen: (client, options) => {
      const listener = new DeviceStreamListener(client, {
        relay: { endpoint: wps.endpoint, hub: relayHub, allowInsecure: true },
        ...options,
      });
      listeners.add(listener);
      return listener;
    },
    close: async () => {
      await Promise.all([...listeners].map((l) => l.close()));
      await Promise.all([...open].map((c) => c.close().catch(() => undefined)));
      await wps.close();
      await hub.close();
      await host.close();
      await azurite.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * What `fromConnectionString` builds, with the IDs given apart: a connection string cannot carry an
 * ID with `;` (IoT Hub's own format splits on it), and IoT Hub allows `;` in IDs.
 */
function keyProvider(
  connectionString: string,
  ids: { deviceId: string; moduleId?: string },
): SharedAccessKeyAuthenticationProvider {
  const field = (name: string) => new RegExp(`(?:^|;)${name}=([^;]+)`).exec(connectionString)?.[1];
  const [host, sharedAccessKey, gatewayHostName] = ["HostName", "SharedAccessKey", "GatewayHostName"].map(
    field,
  );
  if (!host || !sharedAccessKey)
    throw new Error("the emulator's connection string lacks HostName or SharedAccessKey");
  return new SharedAccessKeyAuthenticationProvider({
    host,
    ...ids,
    sharedAccessKey,
    ...(gatewayHostName ? { gatewayHostName } : {}),
  });
}

/** One stack per test file. */
export function useStack(env: Record<string, string> = {}): () => Stack {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await startStack(env);
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  }, 30_000);
  return () => {
    if (!stack) throw new Error("useStack(): the stack did not start");
    return stack;
  };
}
