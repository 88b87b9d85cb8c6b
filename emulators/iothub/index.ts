import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ensureTlsMaterial } from "./certs";
import { DEFAULT_HUB_NAME, DEV_POLICY, HubHosts, dialableHost, isValidHubName } from "./hub";
import { type Identity, checkId } from "./identity";
import { type EmulatorLog, silentLog } from "./log";
import { DirectMethodBridge } from "./methods";
import { DeviceGateway } from "./mqtt/gateway";
import { MqttWebSocketEndpoint } from "./mqtt/websocket";
import { TokenBucket } from "./rateLimit";
import { IdentityRegistry, RegistryError } from "./registry";
import { createHubHandler } from "./rest/routes";
import type { BearerCheck } from "../entra/rbac";
import { HubRestServer } from "./rest/server";

export { DEV_POLICY } from "./hub";
export { RegistryError } from "./registry";
export type { EmulatorLog } from "./log";

export interface IotHubEmulatorOptions {
  /** Address both servers bind to (default 127.0.0.1). */
  host?: string;
  /** MQTT over TLS (default 8883; 0 picks a free port). */
  mqttPort?: number;
  /** HTTPS REST, and MQTT over WebSockets at /$iothub/websocket (default 8443; 0 picks a free port). */
  httpsPort?: number;
  /** Default "devicestreams": devices see `<hubName>.azure-devices.net` as HostName. */
  hubName?: string;
  /** Registry and certificates live here and survive restarts; default: a temporary dir removed on close. */
  stateDir?: string;
  /** Answer 429 to direct-method calls beyond this many per second (default: no limit). */
  methodRateLimitPerSecond?: number;
  /** One line per connect, disconnect, method call and result (default: silent). */
  log?: EmulatorLog;
  /** Accept Entra ID bearer tokens on the service REST API, as IoT Hub does (keyless). */
  entra?: BearerCheck;
  /** Called for each service REST request signed with a SAS key. */
  onKeySignedRequest?: () => void;
}

export interface IotHubEmulator {
  readonly hubName: string;
  /** The hub host name devices use in HostName and SAS tokens, e.g. "devicestreams.azure-devices.net". */
  readonly hubHostName: string;
  readonly mqttPort: number;
  /** REST API, and MQTT over WebSockets at `wss://<host>:<httpsPort>/$iothub/websocket`. */
  readonly httpsPort: number;
  readonly stateDir: string;
  /** `HostName=<host>:<httpsPort>;SharedAccessKeyName=iothubowner;SharedAccessKey=<development key>`. */
  readonly serviceConnectionString: string;
  /** The development CA to trust (PEM file; name contains "ca"). */
  readonly caPath: string;
  /** The same CA as PEM text, for the SDKs' `ca` option. */
  readonly caPem: string;
  /** Registers a device with generated keys; returns its connection string (with GatewayHostName). */
  createDevice(deviceId: string): Promise<string>;
  /** Registers a module on an existing device; returns its connection string. */
  createModule(deviceId: string, moduleId: string): Promise<string>;
  /** The connection string of an already registered device or module, if any. */
  connectionString(deviceId: string, moduleId?: string): string | undefined;
  close(): Promise<void>;
}

function checkPort(name: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`${name} must be 0-65535`);
  return port;
}

export async function startIotHubEmulator(options: IotHubEmulatorOptions = {}): Promise<IotHubEmulator> {
  const host = options.host ?? "127.0.0.1";
  const hubName = options.hubName ?? DEFAULT_HUB_NAME;
  if (!isValidHubName(hubName)) throw new RangeError("hubName must be 3-50 letters, digits or hyphens");
  const mqttPortWanted = checkPort("mqttPort", options.mqttPort ?? 8883);
  const httpsPortWanted = checkPort("httpsPort", options.httpsPort ?? 8443);
  const log = options.log ?? silentLog;
  const ephemeral = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(path.join(tmpdir(), "iothub-emulator-")));

  const hosts = new HubHosts(hubName, host);
  const registry = new IdentityRegistry(path.join(stateDir, "registry.json"));
  let tls: Awaited<ReturnType<typeof ensureTlsMaterial>>;
  try {
    tls = await ensureTlsMaterial(stateDir, host);
    await registry.load();
  } catch (err) {
    if (ephemeral) await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
  const gateway = new DeviceGateway({ registry, hosts, tls, log });
  const bridge = new DirectMethodBridge(gateway, log);
  const websockets = new MqttWebSocketEndpoint((stream, peer) => gateway.handle(stream, peer), log);
  const rest = new HubRestServer(
    tls,
    createHubHandler({
      registry,
      gateway,
      bridge,
      hosts,
      log,
      ...(options.entra ? { entra: options.entra } : {}),
      ...(options.onKeySignedRequest ? { onKeySignedRequest: options.onKeySignedRequest } : {}),
      ...(options.methodRateLimitPerSecond === undefined
        ? {}
        : { methodRateLimit: new TokenBucket(options.methodRateLimitPerSecond) }),
    }),
    log,
    websockets,
  );

  const close = async () => {
    await rest.close();
    bridge.close();
    await gateway.close();
    await registry.flush();
    if (ephemeral) await rm(stateDir, { recursive: true, force: true });
  };

  let mqttPort: number;
  let httpsPort: number;
  try {
    mqttPort = await gateway.start(host, mqttPortWanted);
    httpsPort = await rest.start(host, httpsPortWanted);
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }

  const dialable = dialableHost(host);
  const connectionString = (deviceId: string, moduleId?: string): string | undefined => {
    const identity: Identity = moduleId === undefined ? { deviceId } : { deviceId, moduleId };
    const record = registry.get(identity);
    if (!record) return undefined;
    return [
      `HostName=${hosts.hubHostName}`,
      `DeviceId=${deviceId}`,
      ...(moduleId === undefined ? [] : [`ModuleId=${moduleId}`]),
      `SharedAccessKey=${record.primaryKey}`,
      // The device SDK dials GatewayHostName and keeps HostName for the username and token scope.
      `GatewayHostName=${dialable}:${mqttPort}`,
    ].join(";");
  };
  const create = async (identity: Identity): Promise<string> => {
    const problem =
      checkId("deviceId", identity.deviceId) ??
      (identity.moduleId === undefined ? undefined : checkId("moduleId", identity.moduleId));
    if (problem) throw new RegistryError("Invalid", problem);
    await registry.create(identity);
    return connectionString(identity.deviceId, identity.moduleId) as string;
  };

  return {
    hubName,
    hubHostName: hosts.hubHostName,
    mqttPort,
    httpsPort,
    stateDir,
    serviceConnectionString: `HostName=${dialable}:${httpsPort};SharedAccessKeyName=${DEV_POLICY.name};SharedAccessKey=${DEV_POLICY.key}`,
    caPath: tls.caPath,
    caPem: tls.caPem,
    createDevice: (deviceId) => create({ deviceId }),
    createModule: (deviceId, moduleId) => create({ deviceId, moduleId }),
    connectionString,
    close,
  };
}
