/**
 * The route table: the single source of truth for what the control plane serves. Functions
 * registers it (functions/index.ts) and the local host serves it (devstack/host.ts). Services
 * are built on first use, so registering routes has no side effects and a bad configuration
 * surfaces as a clear error on the first request and in health, not as a crash at import.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import type { AccessControl } from "./api/access";
import type { RelayEventAuthenticator } from "./auth";
import { buildOpenApi } from "./api/openapi";
import { RelayEventsApi, abuseProtectionResponse } from "./api/relayEventsApi";
import {
  createStreamBody,
  createdStream,
  endpointsView,
  listQuery,
  streamList,
  streamView,
  API_VERSIONS,
} from "./api/schemas";
import { StreamsApi } from "./api/streamsApi";
import type { Config } from "./config";
import type { Logger } from "./log";
import { json, toErrorResponse } from "./http/respond";
import { requireApiVersion } from "./http/request";
import type { HttpRouteDef, RouteTable } from "./http/routeTypes";
import type { StreamService } from "./streams/service";

export interface AppServices {
  config: Readonly<Config>;
  service: StreamService;
  access: AccessControl;
  relayGuard: RelayEventAuthenticator;
  logger: Logger;
  relayEndpoint: string;
  iotHubHostName: string;
}

export const VERSION = "0.1.0";
export const RELAY_EVENTS_ROUTE = "relay/events";

type Handler = (request: HttpRequest, services: AppServices) => Promise<HttpResponseInit>;

/** What Web PubSub's OPTIONS validation needs: the allowed origins, from the settings alone. */
export type AbuseProtection = () => Promise<Pick<RelayEventAuthenticator, "abuseProtection">>;

/**
 * `getAbuseProtection` answers the relay-events OPTIONS without the services (functions/index.ts
 * passes one built from the settings); by default it comes from the services.
 */
export function createRouteTable(
  getServices: () => Promise<AppServices>,
  getAbuseProtection: AbuseProtection = async () => (await getServices()).relayGuard,
): RouteTable {
  const wrap =
    (handler: Handler) =>
    async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
      try {
        return await handler(request, await getServices());
      } catch (err) {
        return toErrorResponse(err, (m) => context.error(m));
      }
    };

  const streams = (s: AppServices) =>
    new StreamsApi({ service: s.service, access: s.access, maxDataBytes: s.config.streams.maxDataBytes });
  const relayEvents = (s: AppServices) =>
    new RelayEventsApi({ service: s.service, guard: s.relayGuard, hub: s.config.webPubSub.hub });

  const postRelayEvent = wrap((req, s) => relayEvents(s).post(req));

  const errors = {
    400: { description: "Invalid input; the message names the field." },
    401: { description: "Unauthenticated." },
    403: { description: "Not allowed for this device or stream name." },
  };

  const http: HttpRouteDef[] = [
    {
      name: "streams",
      methods: ["POST", "GET", "DELETE"],
      route: "devices/{deviceId}/streams",
      handler: wrap((req, s) => {
        const api = streams(s);
        if (req.method === "POST") return api.create(req);
        if (req.method === "GET") return api.list(req);
        return api.closeAll(req);
      }),
      docs: {
        POST: {
          summary: "Open a stream to a device",
          tags: ["streams"],
          versioned: true,
          body: createStreamBody,
          responses: {
            201: { description: "The device accepted and is on the relay.", schema: createdStream },
            ...errors,
            404: { description: "DeviceNotFound, ModuleNotFound or DeviceNotOnline." },
            409: { description: "StreamRejected by the device, with its reason and data." },
            429: {
              description:
                "TooManyStreams for this device or the caller's share of it, or Throttled by IoT Hub; see Retry-After.",
            },
            502: { description: "InvalidDeviceResponse: the device's answer is too large to record." },
            503: { description: "An upstream service failed." },
            504: { description: "DeviceTimeout." },
          },
        },
        GET: {
          summary: "List a device's streams",
          tags: ["streams"],
          versioned: true,
          query: listQuery,
          responses: { 200: { description: "A page of streams.", schema: streamList }, ...errors },
        },
        DELETE: {
          summary: "Close all of a device's streams",
          tags: ["streams"],
          versioned: true,
          responses: { 204: { description: "Closed." }, ...errors },
        },
      },
    },
    {
      name: "moduleStreams",
      methods: ["POST"],
      route: "devices/{deviceId}/modules/{moduleId}/streams",
      handler: wrap((req, s) => streams(s).create(req)),
      docs: {
        POST: {
          summary: "Open a stream to a module identity",
          tags: ["streams"],
          versioned: true,
          body: createStreamBody,
          responses: { 201: { description: "Accepted.", schema: createdStream }, ...errors },
        },
      },
    },
    {
      name: "stream",
      methods: ["GET", "DELETE"],
      route: "devices/{deviceId}/streams/{streamId}",
      handler: wrap((req, s) => (req.method === "GET" ? streams(s).show(req) : streams(s).close(req))),
      docs: {
        GET: {
          summary: "Show a stream (never its relay credentials)",
          tags: ["streams"],
          versioned: true,
          responses: {
            200: { description: "The stream.", schema: streamView },
            ...errors,
            404: { description: "StreamNotFound." },
          },
        },
        DELETE: {
          summary: "Close a stream; both relay connections end at once",
          tags: ["streams"],
          versioned: true,
          responses: { 204: { description: "Closed." }, ...errors, 404: { description: "StreamNotFound." } },
        },
      },
    },
    {
      name: "endpoints",
      methods: ["GET"],
      route: "endpoints",
      handler: wrap(async (req, s) => {
        requireApiVersion(req, API_VERSIONS);
        await s.access.authenticate(req);
        return json(200, {
          relay: { endpoint: s.relayEndpoint, hub: s.config.webPubSub.hub },
          iotHub: { hostName: s.iotHubHostName, methodName: s.config.iotHub.methodName },
          apiVersions: [...API_VERSIONS],
        });
      }),
      docs: {
        GET: {
          summary: "Where streams flow (the analogue of `az iot hub devicestream show`)",
          tags: ["service"],
          versioned: true,
          responses: { 200: { description: "Endpoints.", schema: endpointsView }, ...errors },
        },
      },
    },
    {
      name: "health",
      methods: ["GET"],
      route: "health",
      handler: async (_req, context) => {
        try {
          await getServices();
          return json(200, { status: "ok", version: VERSION });
        } catch (err) {
          // Setting names only, never values: health is anonymous.
          return toErrorResponse(err, (m) => context.error(m));
        }
      },
      docs: {
        GET: {
          summary: "Liveness and configuration check",
          tags: ["service"],
          anonymous: true,
          responses: { 200: { description: "Healthy." } },
        },
      },
    },
    {
      name: "openapi",
      methods: ["GET"],
      route: "openapi.json",
      handler: async () => json(200, buildOpenApi(table, VERSION)),
      docs: {
        GET: {
          summary: "This document",
          tags: ["service"],
          anonymous: true,
          responses: { 200: { description: "OpenAPI 3.1." } },
        },
      },
    },
    {
      name: "relayEvents",
      methods: ["POST", "OPTIONS"],
      route: RELAY_EVENTS_ROUTE,
      handler: async (req, context) => {
        if (req.method !== "OPTIONS") return postRelayEvent(req, context);
        try {
          return abuseProtectionResponse(req, await getAbuseProtection());
        } catch (err) {
          return toErrorResponse(err, (m) => context.error(m));
        }
      },
    },
  ];

  const table: RouteTable = {
    http,
    timers: [
      {
        name: "housekeeping",
        // NCRONTAB with seconds: every 10 s, within the "every <= 15 s" the design asks for.
        schedule: "*/10 * * * * *",
        intervalMs: 10_000,
        handler: async (_timer, context) => {
          const services = await getServices();
          const { examined } = await services.service.sweep();
          if (examined > 0) context.log(`housekeeping examined ${examined} streams`);
        },
      },
    ],
  };
  return table;
}
