import type { DevStackDeps } from "./start";
// TODO(lead): wire the control plane once shared/app.ts exists — replace the body of
// createRouteTable below with `createRouteTable(loadConfig(env))`:
// import { createRouteTable } from "../shared/app";

/** What `npm start` runs the local stack with; the only place that knows the real control plane. */
export function productionDeps(): DevStackDeps {
  return {
    createRouteTable: () => {
      throw new Error("the control plane is not wired into the local stack yet (devstack/main.ts)");
    },
  };
}
