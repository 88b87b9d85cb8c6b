/**
 * The entry points of `fetch` to a device. They load undici on first call, so a program that
 * imports the SDK and never fetches does not load it.
 */
import type { StreamsClient } from "../client";
import type { DeviceDispatcher, DeviceDispatcherOptions, DeviceFetch } from "./dispatcher";
import type { DeviceTarget } from "./target";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = () => require("./dispatcher") as typeof import("./dispatcher");

/** `fetch` whose requests all go to `target` over pooled channels (see DeviceDispatcher). */
export function createDeviceFetch(
  client: StreamsClient,
  target: DeviceTarget,
  options: DeviceDispatcherOptions = {},
): DeviceFetch {
  return load().createDeviceFetch(client, target, options);
}

/** The undici dispatcher alone, for undici's own request/stream/pipeline APIs. */
export function createDeviceDispatcher(
  client: StreamsClient,
  target: DeviceTarget,
  options: DeviceDispatcherOptions = {},
): DeviceDispatcher {
  return new (load().DeviceDispatcher)(client, target, options);
}
