import { lazyServices } from "../shared/app";
import { createRouteTable } from "../shared/routes";
import type { DevStackDeps } from "./start";

/** What `npm start` runs the local stack with; the only place that knows the real control plane. */
export function productionDeps(): DevStackDeps {
  return { createRouteTable: (env) => createRouteTable(lazyServices(env)) };
}
