/**
 * The control plane on the local Functions host, with its services attached after the host is
 * listening: the Web PubSub emulator needs the host's URL for its event handler before the
 * control plane's settings (the emulator's connection string) exist. Used by the tests and the
 * benchmarks that assemble a stack in process.
 */
import type { EventHandlerSetting } from "../emulators/webpubsub";
import { RELAY_EVENT_SUBSCRIPTION } from "../shared/api/relayEventsApi";
import { ROUTE_PREFIX } from "../shared/http/routeTypes";
import type { Logger } from "../shared/log";
import { type AppServices, RELAY_EVENTS_ROUTE, createRouteTable } from "../shared/routes";
import { type LocalHost, startLocalHost } from "./host";

export interface ControlPlaneHost {
  host: LocalHost;
  /** The Web PubSub hub setting that sends the control plane exactly the events it handles. */
  eventHandler: EventHandlerSetting;
  attach: (services: AppServices) => void;
}

/** The event-handler setting for a control plane at `functionsUrl`. */
export function relayEventHandler(functionsUrl: string): EventHandlerSetting {
  return {
    urlTemplate: `${functionsUrl}/${ROUTE_PREFIX}/${RELAY_EVENTS_ROUTE}`,
    systemEvents: [...RELAY_EVENT_SUBSCRIPTION.systemEvents],
    userEventPattern: RELAY_EVENT_SUBSCRIPTION.userEventPattern,
  };
}

export async function startControlPlaneHost(
  options: { port?: number; logger?: Logger } = {},
): Promise<ControlPlaneHost> {
  let services: AppServices | undefined;
  const host = await startLocalHost({
    table: createRouteTable(async () => {
      if (!services) throw new Error("the control plane's services are not attached yet");
      return services;
    }),
    port: options.port ?? 0,
    logger: options.logger ?? { log: () => undefined },
  });
  return {
    host,
    eventHandler: relayEventHandler(host.url),
    attach: (s) => {
      services = s;
    },
  };
}
