/** Shared fixtures for the emulator suites: device SDK clients that are always cleaned up. */
import { Client, type DeviceClientOptions, ModuleClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import type { IotHubEmulator } from "../../../emulators/iothub";

type DeviceLike = Client | ModuleClient;

export class Devices {
  private readonly open = new Set<DeviceLike>();
  readonly errors: Error[] = [];

  constructor(private readonly hub: () => IotHubEmulator) {}

  /** A device client trusting the emulator's CA, opened, with no automatic reconnects unless asked. */
  device(connectionString: string, options: { retry?: boolean } = {}): Promise<Client> {
    return this.start(Client.fromConnectionString(connectionString, Mqtt), options);
  }

  module(connectionString: string): Promise<ModuleClient> {
    return this.start(ModuleClient.fromConnectionString(connectionString, Mqtt));
  }

  /** `clientOptions` join the CA in one setOptions call: the transport keeps only the last one. */
  async start<T extends DeviceLike>(
    client: T,
    options: { retry?: boolean; clientOptions?: DeviceClientOptions } = {},
  ): Promise<T> {
    client.on("error", (err: Error) => this.errors.push(err));
    if (!options.retry) client.setRetryPolicy(new NoRetry());
    await client.setOptions({ ...options.clientOptions, ca: this.hub().caPem });
    this.open.add(client);
    await client.open();
    return client;
  }

  async closeAll(): Promise<void> {
    const clients = [...this.open];
    this.open.clear();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }
}

/** Awaits a promise's rejection and returns the reason (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  const outcome = await promise.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error("expected a rejection");
  return outcome.err as Error & Record<string, unknown>;
}
