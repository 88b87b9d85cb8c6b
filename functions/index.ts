/**
 * Azure Functions entry point (package.json `main`). It registers the route table — the same
 * table the local host serves — so `func start` and `npm start` expose identical routes.
 * Services are created on first invocation, from the app settings; Web PubSub's OPTIONS validation
 * is answered from the settings alone, so it never waits on the store or its role assignment.
 */
import { app } from "@azure/functions";
import { lazyRelayGuard, lazyServices } from "../shared/app";
import { createRouteTable } from "../shared/routes";

const settings = () => process.env;
const table = createRouteTable(lazyServices(settings), lazyRelayGuard(settings));

for (const route of table.http) {
  app.http(route.name, {
    methods: route.methods,
    route: route.route,
    authLevel: "anonymous",
    handler: route.handler,
  });
}
for (const timer of table.timers) {
  app.timer(timer.name, { schedule: timer.schedule, handler: timer.handler });
}
