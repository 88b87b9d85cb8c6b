/**
 * Azure Functions entry point (package.json `main`). It registers the route table — the same
 * table the local host serves — so `func start` and `npm start` expose identical routes.
 * Services are created on first invocation, from the app settings; Web PubSub's OPTIONS validation
 * is answered from the settings alone, so it never waits on the store or its role assignment.
 */
import { app } from "@azure/functions";
import { lazyRelayGuard, lazyServices } from "../shared/app";
import { createRouteTable } from "../shared/routes";

// Without HTTP streaming the host buffers every request body whole (up to
// FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB by default) before any handler can refuse it, on the
// anonymous relay-events route too. With it, `request.body` is the unread stream, and each route
// reads at most its own limit (shared/http/body.ts). Needs @azure/functions >= 4.3.0 and Functions
// runtime >= 4.28 (learn.microsoft.com/azure/azure-functions/node-http-stream); `setup` throws
// on an older host. devstack/host.ts serves requests the same way.
app.setup({ enableHttpStream: true });

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
