import type { HttpMethod, HttpRequest, HttpResponseInit, InvocationContext, Timer } from "@azure/functions";

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
