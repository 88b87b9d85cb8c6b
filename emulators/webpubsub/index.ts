/**
 * A protocol-compatible local Azure Web PubSub: `startWebPubSubEmulator(options)` starts one HTTP
 * server carrying the client endpoint (`/client/hubs/{hub}`), the data-plane REST API (`/api/...`)
 * and nothing else; `close()` ends every connection (reporting `disconnected` upstream) and waits
 * for pending upstream events.
 */
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { ClientEndpoint } from "./client-endpoint";
import { EventDispatcher } from "./events";
import { resolveOptions, type WebPubSubEmulatorOptions } from "./options";
import { RestApi } from "./rest";
import { WebPubSubService, type LifecycleEvents } from "./service";
import type { EventEmitter } from "node:events";

export type { WebPubSubEmulatorOptions, EventHandlerSetting, SystemEventName } from "./options";
export { WELL_KNOWN_ACCESS_KEY } from "./options";
export type {
  EventFault,
  EventInfo,
  FaultConfig,
  FaultInjector,
  NonBlockingEventInfo,
  SeededFaults,
} from "./faults";
export type { ConnectionInfo, LifecycleEvents } from "./service";

export interface WebPubSubEmulator {
  /** `http://host:port` (`https://` with `tls`), the form a connection string's Endpoint takes. */
  endpoint: string;
  connectionString: string;
  port: number;
  /** `connected` / `disconnected` as they happen, for tests that wait on them. */
  lifecycle: EventEmitter<LifecycleEvents>;
  /** Test hook: cuts a connection's socket as a network failure would (reliable clients may recover). */
  dropTransport(hub: string, connectionId: string): boolean;
  /** Resolves once the event handler has answered every event sent so far (see EventDispatcher). */
  eventsSettled(): Promise<void>;
  close(): Promise<void>;
}

export async function startWebPubSubEmulator(
  options: WebPubSubEmulatorOptions = {},
): Promise<WebPubSubEmulator> {
  const resolved = resolveOptions(options);
  let endpoint = "";
  const events = new EventDispatcher(resolved, resolved.host);
  const service = new WebPubSubService(resolved, events);
  const clients = new ClientEndpoint(resolved, service, () => endpoint);
  const rest = new RestApi(resolved, service, () => endpoint);

  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if ((req.url ?? "").startsWith("/api/")) return rest.handle(req, res);
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("Not found.");
  };
  const server = resolved.tls ? https.createServer(resolved.tls, listener) : http.createServer(listener);
  server.on("upgrade", (req, socket, head) => clients.handleUpgrade(req, socket, head));
  server.on("clientError", (_err, socket) => socket.destroy());
  server.listen(resolved.port, resolved.host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const hostForUrl = resolved.host.includes(":") ? `[${resolved.host}]` : resolved.host;
  endpoint = `${resolved.tls ? "https" : "http"}://${hostForUrl}:${port}`;

  const keepAlive = setInterval(() => service.keepAlive(Date.now()), resolved.keepAliveIntervalMs);
  keepAlive.unref();
  let closing: Promise<void> | undefined;

  return {
    endpoint,
    port,
    connectionString: `Endpoint=${endpoint};AccessKey=${resolved.accessKey};Version=1.0;`,
    lifecycle: service.lifecycle,
    dropTransport(hub, connectionId) {
      const ws = service.find(hub, connectionId)?.ws;
      if (!ws) return false;
      ws.terminate();
      return true;
    },
    eventsSettled: () => events.settled(),
    close() {
      closing ??= (async () => {
        clearInterval(keepAlive);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        clients.close();
        server.closeAllConnections();
        await service.closeAll("The service is shutting down.");
        await closed;
        await events.close();
      })();
      return closing;
    },
  };
}
