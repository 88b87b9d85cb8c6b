/** Shared fixtures for the emulator suites: device SDK clients that are always cleaned up. */
import { Client, ModuleClient } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { NoRetry } from "azure-iot-common";
import type { IotHubEmulator } from "../../../emulators/iothub";

type DeviceLike = Client | ModuleClient;

export class Devices {
  private readonly open = new Set<DeviceLike>();
  readonly errors: Error[] = [];

  constructor(private readonly hub: () => IotHubEmulator) {}

  /** A device (or module) client trusting the emulator's CA, opened, with no automatic reconnects. */
  async connect(connectionString: string, options: { retry?: boolean } = {}): Promise<DeviceLike> {
    const client = /;ModuleId=/.test(connectionString)
      ? ModuleClient.fromConnectionString(connectionString, Mqtt)
      : Client.fromConnectionString(connectionString, Mqtt);
    return this.start(client, options);
  }

  async start<T extends DeviceLike>(client: T, options: { retry?: boolean } = {}): Promise<T> {
    client.on("error", (err: Error) => this.errors.push(err));
    if (!options.retry) client.setRetryPolicy(new NoRetry());
    await client.setOptions({ ca: this.hub().caPem });
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
