// Web PubSub validates its event handler with an OPTIONS request (CloudEvents abuse protection).
// It must be answered from the settings alone: while the store or its role assignment is not
// ready (RBAC propagation after a first deploy), building the services fails, and a validation
// that waited on them would make Web PubSub refuse every connect.
import { HttpRequest, InvocationContext } from "@azure/functions";
import { lazyRelayGuard } from "../../shared/app";
import { createRouteTable } from "../../shared/routes";
import { localEnv } from "../helpers/controlPlane";

const env = localEnv("UseDevelopmentStorage=true");

function relayEvents(table: ReturnType<typeof createRouteTable>) {
  const route = table.http.find((r) => r.name === "relayEvents");
  if (!route) throw new Error("no relayEvents route");
  return (method: string, origin?: string) =>
    route.handler(
      new HttpRequest({
        method,
        url: "http://localhost/api/relay/events",
        headers: origin ? { "webhook-request-origin": origin } : {},
      }),
      new InvocationContext({ logHandler: () => undefined }),
    );
}

describe("relay-events OPTIONS with a store that throws", () => {
  let built = 0;
  const failingServices = () => {
    built++;
    return Promise.reject(new Error("AuthorizationPermissionMismatch: the table role is not there yet"));
  };

  beforeEach(() => {
    built = 0;
  });

  it("grants delivery to Web PubSub's origin without building the services", async () => {
    const call = relayEvents(
      createRouteTable(
        failingServices,
        lazyRelayGuard(() => env),
      ),
    );
    const response = await call("OPTIONS", "localhost");
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({ "WebHook-Allowed-Origin": "localhost" });
    expect(built).toBe(0);
  });

  it("still refuses other origins and a missing origin, from the settings", async () => {
    const call = relayEvents(
      createRouteTable(
        failingServices,
        lazyRelayGuard(() => env),
      ),
    );
    expect((await call("OPTIONS", "evil.example")).status).toBe(403);
    expect((await call("OPTIONS")).status).toBe(400);
    expect(built).toBe(0);
  });

  it("uses RELAY_EVENTS_ALLOWED_ORIGINS when set (keyless Azure: the Web PubSub host name)", async () => {
    const settings = { ...env, RELAY_EVENTS_ALLOWED_ORIGINS: "relay.webpubsub.azure.com" };
    const call = relayEvents(
      createRouteTable(
        failingServices,
        lazyRelayGuard(() => settings),
      ),
    );
    expect((await call("OPTIONS", "relay.webpubsub.azure.com")).status).toBe(200);
    expect((await call("OPTIONS", "localhost")).status).toBe(403);
  });

  it("a bad setting is a clear configuration error, not a crash", async () => {
    const call = relayEvents(
      createRouteTable(
        failingServices,
        lazyRelayGuard(() => ({ ...env, RELAY_EVENTS_PRINCIPAL_ID: "not-a-guid" })),
      ),
    );
    const response = await call("OPTIONS", "localhost");
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(JSON.stringify(response.jsonBody)).toMatch(/"code"/);
    expect(built).toBe(0);
  });

  it("POST events still need the services (and report their failure)", async () => {
    const call = relayEvents(
      createRouteTable(
        failingServices,
        lazyRelayGuard(() => env),
      ),
    );
    const response = await call("POST", "localhost");
    expect(response.status).toBeGreaterThanOrEqual(500);
    expect(built).toBe(1);
  });

  it("without the settings-only guard, validation would wait on the services and fail", async () => {
    const call = relayEvents(createRouteTable(failingServices));
    expect((await call("OPTIONS", "localhost")).status).toBeGreaterThanOrEqual(500);
    expect(built).toBe(1);
  });
});
