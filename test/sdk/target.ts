/**
 * Where the SDK end-to-end tests run: the in-process local stack (always, in `npm test`), or a real
 * deployment (`npm run test:live`, environment variables in test/live/config.ts). The tests see only
 * this interface; what needs emulator or control-plane internals goes through `local`, which the
 * live target does not have.
 */
import type { Client, ModuleClient } from "azure-iot-device";
import type { DeviceStreamListener, DeviceStreamListenerOptions } from "../../client/sdk/device";
import type { StreamsClient, StreamsClientOptions } from "../../client/sdk/service";
import type { RelayUrlPolicy } from "../../client/sdk/relay";
import { authorizationSource } from "../../client/sdk/service/credentials";
import { parseConnectionString } from "../../client/sdk/service/connectionString";
import { liveConfigFromEnv, liveRequested, targetKind } from "../live/config";
import { startLiveTarget } from "../live/target";
import { loopbackConfig } from "../live/loopback";
import { type Stack, startStack } from "./stack";

export type RelayPolicy = RelayUrlPolicy & { allowInsecure: boolean };

export type ListenOptions = Omit<DeviceStreamListenerOptions, "relay"> & {
  relay?: DeviceStreamListenerOptions["relay"];
};

export interface StreamsTarget {
  readonly kind: "local" | "live";
  /**
   * The device ID a test uses for `name`: unchanged locally, behind this run's unique prefix live
   * (the hub is shared with other runs and maybe with real devices).
   */
  deviceId(name: string): string;
  /** The control plane's origin, and an Authorization header for raw REST calls. */
  readonly endpoint: string;
  authorization(): Promise<string>;
  /** The relay's host as the control plane hands it out. */
  readonly relayHost: string;
  /** The one relay a device joins: endpoint and hub; ws:// only for the local emulator. */
  readonly relayPolicy: RelayPolicy;
  client(options?: StreamsClientOptions): StreamsClient;
  /** Registers a device identity without connecting it. */
  registerDevice(deviceId: string): Promise<void>;
  /** Registers (if needed) and connects a device identity with the official SDK over MQTT; closed on teardown. */
  device(deviceId: string, options?: { retry?: boolean }): Promise<Client>;
  module(deviceId: string, moduleId: string): Promise<ModuleClient>;
  /** Environment for the `devicestream` CLI's service commands: this control plane, these credentials. */
  readonly serviceEnv: Record<string, string>;
  /**
   * `devicestream device` options for a device identity (registered if needed): its connection
   * string, the hub's CA where one is needed, the relay allowlist.
   */
  agentArgs(deviceId: string): Promise<string[]>;
  /** A listener allowing `relayPolicy` unless the options give another; closed on teardown. */
  listen(client: Client | ModuleClient, options: ListenOptions): DeviceStreamListener;
  /** The in-process stack (emulators, host, control-plane log); undefined against Azure. */
  readonly local?: Stack;
  close(): Promise<void>;
}

/** Deadlines of the live run are this many times the local ones (a real network, real cold starts). */
export const TIME_SCALE = liveRequested() ? 4 : 1;
export const scaled = (ms: number): number => ms * TIME_SCALE;

export function localTarget(stack: Stack): StreamsTarget {
  const parsed = parseConnectionString(stack.connectionString);
  const auth = authorizationSource(
    { policyName: parsed.policyName, key: parsed.key },
    { sasResource: new URL(parsed.endpoint).hostname },
  );
  return {
    kind: "local",
    deviceId: (name) => name,
    endpoint: new URL(stack.host.url).origin,
    authorization: () => auth(),
    relayHost: stack.relayHost,
    relayPolicy: { endpoint: stack.relayEndpoint, hub: stack.relayHub, allowInsecure: true },
    client: (options) => stack.client(options),
    registerDevice: async (deviceId) => {
      if (!stack.hub.connectionString(deviceId)) await stack.hub.createDevice(deviceId);
    },
    device: (deviceId, options) => stack.device(deviceId, options),
    module: (deviceId, moduleId) => stack.module(deviceId, moduleId),
    listen: (client, options) => stack.listen(client, options),
    serviceEnv: {
      DEVICESTREAM_CONNECTION_STRING: stack.connectionString,
      DEVICESTREAM_ENDPOINT: "",
      DEVICESTREAM_SCOPE: "",
    },
    agentArgs: async (deviceId) => [
      "--connection-string",
      stack.hub.connectionString(deviceId) ?? (await stack.hub.createDevice(deviceId)),
      "--ca-file",
      stack.hub.caPath,
      "--relay-endpoint",
      `http://${stack.relayHost}`,
      "--relay-hub",
      "streams",
      "--allow-insecure-relay",
    ],
    local: stack,
    close: () => stack.close(),
  };
}

/** The target for a test file's run (beforeAll / afterAll): DEVICESTREAMS_TARGET, default the local stack. */
export async function startTarget(): Promise<StreamsTarget> {
  const kind = targetKind();
  if (kind === "live") return startLiveTarget(liveConfigFromEnv(process.env));
  const stack = await startStack();
  if (kind === "local") return localTarget(stack);
  return startLoopbackTarget(stack);
}

/** The live target on the local emulators: everything the live run does, minus Azure. */
export async function startLoopbackTarget(stack: Stack): Promise<StreamsTarget> {
  const live = await startLiveTarget(loopbackConfig(stack));
  return {
    ...live,
    close: async () => {
      try {
        await live.close();
      } finally {
        await stack.close();
      }
    },
  };
}

/** One target per test file. */
export function useTarget(): () => StreamsTarget {
  let target: StreamsTarget | undefined;
  beforeAll(async () => {
    target = await startTarget();
  }, scaled(60_000));
  afterAll(async () => {
    await target?.close();
  }, scaled(60_000));
  return () => {
    if (!target) throw new Error("useTarget(): the target did not start");
    return target;
  };
}

/**
 * `it` on the local stack; skipped on the live target (and its loopback) for tests that need the
 * emulators' internals or behaviour Azure cannot show. The reason is in the test's name.
 */
export const localOnly: jest.It = targetKind() === "local" ? it : it.skip;
