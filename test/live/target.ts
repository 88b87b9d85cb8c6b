/**
 * The live target: a deployed control plane, its IoT hub and its Web PubSub (docs/live-tests.md).
 * Device and module identities are created in the hub's registry under a prefix unique to this run
 * and deleted on close; devices connect with the official SDK over MQTT with the keys the hub
 * generated, exactly as a real agent would.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Client, ModuleClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import type { Registry } from "azure-iothub";
import { createIotHubClients } from "../../shared/iothub";
import { DeviceStreamListener } from "../../client/sdk/device";
import { StreamsClient } from "../../client/sdk/service";
import { type AuthorizationSource, authorizationSource } from "../../client/sdk/service/credentials";
import { parseConnectionString } from "../../client/sdk/service/connectionString";
import type { StreamsTarget } from "../sdk/target";
import { type LiveConfig, lazyDefaultCredential } from "./config";

type DeviceLike = Client | ModuleClient;

/** `dslive-<8 hex>-`: letters, digits and `-` only, so every test's own characters stay legal. */
export function runPrefix(): string {
  return `dslive-${randomBytes(4).toString("hex")}-`;
}

interface Keys {
  primaryKey?: string;
}

function primaryKey(identity: { authentication?: { symmetricKey?: Keys } }, what: string): string {
  const key = identity.authentication?.symmetricKey?.primaryKey;
  if (!key) throw new Error(`the hub returned no symmetric key for ${what}`);
  return key;
}

export async function startLiveTarget(
  config: LiveConfig,
  options: { prefix?: string } = {},
): Promise<StreamsTarget & { readonly created: readonly string[] }> {
  const prefix = options.prefix ?? runPrefix();
  const { registry } = createIotHubClients(config.iotHub);
  if (!registry) throw new Error("no IoT Hub registry client");
  const reg: Registry = registry;

  let endpoint: string;
  let auth: AuthorizationSource;
  let client: (o?: ConstructorParameters<typeof StreamsClient>[2]) => StreamsClient;
  let serviceEnv: Record<string, string>;
  const cp = config.controlPlane;
  if ("connectionString" in cp) {
    serviceEnv = {
      DEVICESTREAM_CONNECTION_STRING: cp.connectionString,
      DEVICESTREAM_ENDPOINT: "",
      DEVICESTREAM_SCOPE: "",
    };
    const parsed = parseConnectionString(cp.connectionString);
    endpoint = new URL(parsed.endpoint).origin;
    auth = authorizationSource(
      { policyName: parsed.policyName, key: parsed.key },
      { sasResource: parsed.sasResource ?? new URL(parsed.endpoint).hostname },
    );
    client = (o) => StreamsClient.fromConnectionString(cp.connectionString, o);
  } else {
    const credential = cp.credential ?? lazyDefaultCredential();
    endpoint = new URL(cp.endpoint).origin;
    auth = authorizationSource(credential, {
      sasResource: new URL(endpoint).hostname,
      scopes: cp.tokenScope,
    });
    client = (o) => new StreamsClient(endpoint, credential, { tokenScopes: cp.tokenScope, ...o });
    // The CLI uses DefaultAzureCredential itself (an injected credential cannot cross a process).
    serviceEnv = {
      DEVICESTREAM_CONNECTION_STRING: "",
      DEVICESTREAM_ENDPOINT: endpoint,
      DEVICESTREAM_SCOPE: cp.tokenScope,
    };
  }
  const ca = config.devices.caFile ? readFileSync(config.devices.caFile, "utf8") : undefined;

  const relayPolicy = {
    endpoint: config.relay.endpoint,
    hub: config.relay.hub,
    allowInsecure: config.relay.allowInsecure ?? false,
  };
  const relayHost = new URL(config.relay.endpoint).host;
  /** Device IDs this run registered, deleted (with their modules) on close. */
  const created: string[] = [];
  const keys = new Map<string, string>();
  const open = new Set<DeviceLike>();
  const listeners = new Set<DeviceStreamListener>();

  const connectionString = (deviceId: string, moduleId: string | undefined, key: string) =>
    [
      `HostName=${config.devices.hostName}`,
      `DeviceId=${deviceId}`,
      ...(moduleId !== undefined ? [`ModuleId=${moduleId}`] : []),
      `SharedAccessKey=${key}`,
      ...(config.devices.gatewayHostName ? [`GatewayHostName=${config.devices.gatewayHostName}`] : []),
    ].join(";");

  const checkOwned = (deviceId: string) => {
    // Never touch an identity this run did not name: the hub may hold real devices.
    if (!deviceId.startsWith(prefix)) {
      throw new Error(
        `live target: '${deviceId}' lacks this run's prefix '${prefix}' (use target.deviceId())`,
      );
    }
  };

  const register = async (deviceId: string): Promise<string> => {
    checkOwned(deviceId);
    const known = keys.get(deviceId);
    if (known) return known;
    const { responseBody } = await reg.create({ deviceId, status: "enabled" });
    created.push(deviceId);
    const key = primaryKey(responseBody, `device '${deviceId}'`);
    keys.set(deviceId, key);
    return key;
  };

  const start = async <T extends DeviceLike>(c: T, retry = false): Promise<T> => {
    c.on("error", () => undefined);
    if (!retry) c.setRetryPolicy(new NoRetry());
    if (ca) await c.setOptions({ ca });
    open.add(c);
    await c.open();
    return c;
  };

  return {
    kind: "live",
    created,
    deviceId: (name) => `${prefix}${name}`,
    endpoint,
    authorization: () => auth(),
    relayHost,
    relayPolicy,
    client: (o) => client(o),
    registerDevice: async (deviceId) => {
      await register(deviceId);
    },
    device: async (deviceId, o = {}) => {
      const key = await register(deviceId);
      return start(Client.fromConnectionString(connectionString(deviceId, undefined, key), Mqtt), o.retry);
    },
    module: async (deviceId, moduleId) => {
      await register(deviceId);
      const id = `${deviceId}/${moduleId}`;
      let key = keys.get(id);
      if (!key) {
        await reg.addModule({ deviceId, moduleId });
        // addModule's answer is typed loosely; read the module back for its generated keys.
        const { responseBody } = await reg.getModule(deviceId, moduleId);
        key = primaryKey(responseBody, `module '${id}'`);
        keys.set(id, key);
      }
      return start(ModuleClient.fromConnectionString(connectionString(deviceId, moduleId, key), Mqtt));
    },
    serviceEnv,
    agentArgs: async (deviceId) => [
      "--connection-string",
      connectionString(deviceId, undefined, await register(deviceId)),
      ...(config.devices.caFile ? ["--ca-file", config.devices.caFile] : []),
      "--relay-endpoint",
      relayPolicy.endpoint,
      "--relay-hub",
      relayPolicy.hub,
      ...(relayPolicy.allowInsecure ? ["--allow-insecure-relay"] : []),
    ],
    listen: (c, o) => {
      const listener = new DeviceStreamListener(c, { relay: relayPolicy, ...o });
      listeners.add(listener);
      return listener;
    },
    close: async () => {
      await Promise.all([...listeners].map((l) => l.close()));
      await Promise.all([...open].map((c) => c.close().catch(() => undefined)));
      const failed: string[] = [];
      for (const deviceId of created) {
        await reg.delete(deviceId).catch((err: Error) => failed.push(`${deviceId}: ${err.message}`));
      }
      if (failed.length > 0) {
        throw new Error(`live target: could not delete ${failed.length} device(s):\n${failed.join("\n")}`);
      }
    },
  };
}
