import type { HttpMethod, HttpRequest, HttpResponseInit, InvocationContext, Timer } from "@azure/functions";
import type { z } from "zod";

/** What the OpenAPI document says about a route; generated, never written by hand. */
export interface OperationDoc {
  summary: string;
  tags: string[];
  anonymous?: boolean;
  /** Whether `api-version` is required. */
  versioned?: boolean;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
}

/**
 * The route table is the single source of truth for what the control plane serves. `functions/`
 * registers it with `app.http` / `app.timer` for the Functions host, and `devstack/host.ts` serves
 * the very same entries over Node's http where Core Tools is not installed.
 */
export interface HttpRouteDef {
  /** Function name, unique in the app. */
  name: string;
  methods: HttpMethod[];
  /** Functions route template without the `api/` prefix, e.g. `devices/{deviceId}/streams/{streamId?}`. */
  route: string;
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;
  /** One entry per method, for the OpenAPI document. */
  docs?: Partial<Record<HttpMethod, OperationDoc>>;
}

export interface TimerDef {
  name: string;
  /** NCRONTAB (six fields, with seconds) for the Functions host. */
  schedule: string;
  /** The same period in milliseconds, for the local host's interval timer. */
  intervalMs: number;
  handler: (timer: Timer, context: InvocationContext) => Promise<void>;
}

export interface RouteTable {
  http: HttpRouteDef[];
  timers: TimerDef[];
}

/** Route prefix from host.json (`extensions.http.routePrefix`). */
export const ROUTE_PREFIX = "api";
