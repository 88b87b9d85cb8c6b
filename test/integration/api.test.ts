import { signConnectionId } from "../../shared/auth";
import { relayUserId } from "../../shared/streams/model";
import { WPS_KEY, dispatch, sas, useControlPlane } from "../helpers/controlPlane";
import { joiningDevice } from "../helpers/fakes";
import { createRouteTable } from "../../shared/routes";
import { lazyServices } from "../../shared/app";
import { encodeIdSegment } from "../../common/ids";

const plane = useControlPlane();
const V = "api-version=2026-12-01";
const dev = encodeIdSegment;

beforeEach(() => {
  const p = plane();
  p.signaller.calls = [];
  p.signaller.answer = joiningDevice(() => p.services.service, p.relay, { motd: "welcome" });
});

function expectError(
  res: { status: number; headers: Headers; json: () => any },
  status: number,
  code: string,
) {
  expect(res.status).toBe(status);
  expect(res.headers.get("x-ms-error-code")).toBe(code);
  const body = res.json();
  expect(body).toEqual({ error: expect.objectContaining({ code, message: expect.any(String) }) });
  return body.error as { code: string; message: string; [k: string]: unknown };
}

const open = (
  device: string,
  body: unknown = { name: "ssh" },
  init: { auth?: string | null; headers?: Record<string, string> } = {},
) => plane().call("POST", `/api/devices/${dev(device)}/streams?${V}`, { body, ...init });

describe("POST /api/devices/{deviceId}/streams", () => {
  it("opens a stream and returns the service's relay credential apart from the URL", async () => {
    const res = await open("Dev#A?1", { name: "ssh", data: { user: "pi" }, handshakeTimeoutSeconds: 20 });
    expect(res.status).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({
      deviceId: "Dev#A?1",
      name: "ssh",
      state: "Accepted",
      openedBy: "service",
      deviceResponse: { motd: "welcome" },
      relay: { url: "ws://relay.test/client/hubs/streams", token: expect.stringContaining(".service") },
    });
    expect(body.relay.url).not.toContain("token");
    expect(Date.parse(body.expiresAt) - Date.parse(body.createdAt)).toBe(20_000);
    expect(res.headers.get("location")).toBe(
      `http://localhost:7071/api/devices/${dev("Dev#A?1")}/streams/${body.streamId}?api-version=2026-12-01`,
    );
    const call = plane().signaller.calls[0]!;
    expect(call.target).toEqual({ deviceId: "Dev#A?1" });
    expect(call.request.payload).toMatchObject({ v: 1, name: "ssh", data: { user: "pi" } });
  });

  it("opens a stream to a module identity", async () => {
    const res = await plane().call(
      "POST",
      `/api/devices/${dev("gateway")}/modules/${dev("agent")}/streams?${V}`,
      {
        body: { name: "ssh" },
      },
    );
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({ deviceId: "gateway", moduleId: "agent" });
    expect(plane().signaller.calls[0]!.target).toEqual({ deviceId: "gateway", moduleId: "agent" });
  });

  it.each([
    ["no name", {}, "name"],
    ["an empty name", { name: "" }, "name"],
    ["a name with a space", { name: "has space" }, "name"],
    ["a timeout below 5 s", { name: "ssh", handshakeTimeoutSeconds: 4 }, "handshakeTimeoutSeconds"],
    ["a timeout above 60 s", { name: "ssh", handshakeTimeoutSeconds: 61 }, "handshakeTimeoutSeconds"],
    ["a fractional timeout", { name: "ssh", handshakeTimeoutSeconds: 7.5 }, "handshakeTimeoutSeconds"],
    ["an unknown field", { name: "ssh", extra: true }, "(body)"],
    ["data above 4 KiB", { name: "ssh", data: "x".repeat(5000) }, "data"],
    ["an array", [1, 2], "(body)"],
  ])("400 for %s, naming the field", async (_label, body, field) => {
    const error = expectError(await open("dev1", body), 400, "InvalidRequestBody");
    expect(error.field).toBe(field);
  });

  it("400 for a device id IoT Hub would not accept, naming it", async () => {
    const error = expectError(await open("bad id"), 400, "InvalidRequestBody");
    expect(error.field).toBe("deviceId");
    expect(error.message).toMatch(
      /^deviceId: must decode to 1-128 ASCII letters, digits or - : \. \+ % _ # \* \? ! \( \) , = @ ; \$ '$/,
    );
  });

  it.each([
    ["a plain ID (the path form of api-version 2026-11-01)", "Demo-Device-01"],
    ["padding", "Li4="],
    ["standard base64's '+'", "Pz8+"],
    ["non-zero unused bits", "Li5"],
  ])("400 for a deviceId segment with %s, naming the parameter", async (_what, segment) => {
    const res = await plane().call("POST", `/api/devices/${encodeURIComponent(segment)}/streams?${V}`, {
      body: { name: "ssh" },
    });
    const error = expectError(res, 400, "InvalidRequestBody");
    expect(error.field).toBe("deviceId");
    expect(error.message).toMatch(/^deviceId: must/);
    expect(plane().signaller.calls).toHaveLength(0);
  });

  it("400 for a moduleId segment that is not canonical base64url, naming it", async () => {
    const res = await plane().call("POST", `/api/devices/${dev("gateway")}/modules/Li4=/streams?${V}`, {
      body: { name: "ssh" },
    });
    expect(expectError(res, 400, "InvalidRequestBody").field).toBe("moduleId");
  });

  it.each([".", "..", "%2F", ";", "a#b?c"])(
    "carries the device ID %p to the device unchanged",
    async (id) => {
      const res = await open(id);
      expect(res.status).toBe(201);
      expect(res.json().deviceId).toBe(id);
      expect(plane().signaller.calls[0]!.target).toEqual({ deviceId: id });
    },
  );

  it("carries the module ID '..' to that module, never to the device", async () => {
    const res = await plane().call("POST", `/api/devices/${dev("gw")}/modules/${dev("..")}/streams?${V}`, {
      body: { name: "ssh" },
    });
    expect(res.status).toBe(201);
    expect(plane().signaller.calls[0]!.target).toEqual({ deviceId: "gw", moduleId: ".." });
  });

  it("400 for invalid JSON, 415 for another content type, 413 for a huge body", async () => {
    expectError(await open("dev1", "{not json"), 400, "InvalidJson");
    expectError(
      await open("dev1", "name=ssh", { headers: { "content-type": "text/plain" } }),
      415,
      "UnsupportedMediaType",
    );
    expectError(
      await open("dev1", JSON.stringify({ name: "ssh", data: "x".repeat(20_000) })),
      413,
      "RequestBodyTooLarge",
    );
  });

  it("400 without or with an unknown api-version", async () => {
    expectError(
      await plane().call("POST", `/api/devices/${dev("dev1")}/streams`, { body: { name: "ssh" } }),
      400,
      "MissingApiVersionParameter",
    );
    expectError(
      await plane().call("POST", `/api/devices/${dev("dev1")}/streams?api-version=2026-11-01`, {
        body: { name: "ssh" },
      }),
      400,
      "UnsupportedApiVersion",
    );
  });

  it("401 without credentials, with an expired or forged SAS, or an IoT Hub token", async () => {
    expectError(await open("dev1", { name: "ssh" }, { auth: null }), 401, "Unauthenticated");
    expectError(
      await open("dev1", { name: "ssh" }, { auth: sas("service", new Date(Date.now() - 120_000)) }),
      401,
      "Unauthenticated",
    );
    const forged = sas("service").replace(/sig=[^&]+/, "sig=AAAA");
    expectError(await open("dev1", { name: "ssh" }, { auth: forged }), 401, "Unauthenticated");
    const hubToken = sas("service").replace("sr=localhost", "sr=myhub.azure-devices.net");
    expectError(await open("dev1", { name: "ssh" }, { auth: hubToken }), 401, "Unauthenticated");
    expect(plane().signaller.calls).toHaveLength(0);
  });

  it("403 for a stream name or device outside the policy", async () => {
    expectError(await open("Dev-7", { name: "ssh" }, { auth: sas("webOnly") }), 403, "Forbidden");
    expectError(await open("other", { name: "web" }, { auth: sas("webOnly") }), 403, "Forbidden");
    expectError(await open("Dev-7", { name: "web" }, { auth: sas("reader") }), 403, "Forbidden");
    expect((await open("Dev-7", { name: "web" }, { auth: sas("webOnly") })).status).toBe(201);
  });

  it("409 with the device's reason and data when it rejects", async () => {
    plane().signaller.answer = async () => ({
      status: 400,
      payload: { reason: "unknown stream name", data: { known: ["web"] } },
    });
    const error = expectError(await open("dev-reject"), 409, "StreamRejected");
    expect(error).toMatchObject({ reason: "unknown stream name", data: { known: ["web"] } });
  });

  it("429 TooManyStreams with Retry-After past the per-device limit, whoever holds the streams", async () => {
    // Two callers, each within its own share (2 of the device's 4: STREAMS_MAX_PER_CALLER's default).
    const webOnly = { auth: sas("webOnly") };
    for (const init of [{}, {}, webOnly, webOnly]) {
      expect((await open("Dev-full", { name: "web" }, init)).status).toBe(201);
    }
    const res = await open("Dev-full", { name: "web" }, webOnly);
    const error = expectError(res, 429, "TooManyStreams");
    expect(error.message).toMatch(/^Device 'Dev-full' already has 4 active streams/);
    expect(res.headers.get("retry-after")).toBe("5");
  });

  it("429 TooManyStreams past the caller's share of a device: an echo-only caller cannot lock ssh out", async () => {
    const echoOnly = { auth: sas("echoOnly") };
    expect((await open("Dev-shared", { name: "echo" }, echoOnly)).status).toBe(201);
    expect((await open("Dev-shared", { name: "echo" }, echoOnly)).status).toBe(201);
    const refused = await open("Dev-shared", { name: "echo" }, echoOnly);
    const error = expectError(refused, 429, "TooManyStreams");
    expect(error.message).toMatch(
      /^Caller 'echo-only' already holds 2 active streams on device 'Dev-shared'/,
    );
    expect(refused.headers.get("retry-after")).toBe("5");
    // The device still has room for everyone else.
    expect((await open("Dev-shared", { name: "ssh" })).status).toBe(201);
    expect((await open("Dev-shared", { name: "ssh" })).status).toBe(201);
    // The gateway's policy raises its own share (maxStreamsPerDevice) up to the device's limit.
    const gateway = { auth: sas("gateway") };
    for (let i = 0; i < 4; i++) expect((await open("Dev-gw", { name: "ssh" }, gateway)).status).toBe(201);
    expect(
      expectError(await open("Dev-gw", { name: "ssh" }, gateway), 429, "TooManyStreams").message,
    ).toMatch(/^Device 'Dev-gw' already has 4/);
    // Closing frees the caller's share with the device's slot.
    const mine = (
      await plane().call("GET", `/api/devices/${dev("Dev-shared")}/streams?${V}`, echoOnly)
    ).json();
    const first = mine.value.find((s: { name: string }) => s.name === "echo").streamId as string;
    await plane().call("DELETE", `/api/devices/${dev("Dev-shared")}/streams/${first}?${V}`, echoOnly);
    expect((await open("Dev-shared", { name: "echo" }, echoOnly)).status).toBe(201);
  });
});

describe("GET, DELETE and the audit trail", () => {
  it("shows a stream without any relay credential, lists with paging, closes", async () => {
    const created = (await open("Dev-audit", { name: "web" })).json();
    expect((await open("Dev-audit", { name: "ssh" })).status).toBe(201);
    expect((await open("Dev-audit", { name: "web" }, { auth: sas("webOnly") })).status).toBe(201);

    const shown = await plane().call(
      "GET",
      `/api/devices/${dev("Dev-audit")}/streams/${created.streamId}?${V}`,
    );
    expect(shown.status).toBe(200);
    expect(shown.text).not.toMatch(/token|relay/i);
    expect(shown.json()).toMatchObject({
      streamId: created.streamId,
      state: "Accepted",
      openedBy: "service",
    });

    const seen: string[] = [];
    let next: string | undefined = `/api/devices/${dev("Dev-audit")}/streams?${V}&maxPageSize=1`;
    while (next) {
      const page = await plane().call("GET", next);
      expect(page.status).toBe(200);
      const body = page.json();
      seen.push(...body.value.map((s: { streamId: string }) => s.streamId));
      next = body.nextLink;
    }
    expect(seen).toHaveLength(3);

    // A policy that may only see `web` streams sees only those, and gets 404 for the others.
    const filtered = (
      await plane().call("GET", `/api/devices/${dev("Dev-audit")}/streams?${V}`, { auth: sas("webOnly") })
    ).json();
    expect(filtered.value.map((s: { name: string }) => s.name)).toEqual(["web", "web"]);

    expectError(
      await plane().call("DELETE", `/api/devices/${dev("Dev-audit")}/streams/${created.streamId}?${V}`, {
        auth: sas("reader"),
      }),
      403,
      "Forbidden",
    );
    const del = await plane().call(
      "DELETE",
      `/api/devices/${dev("Dev-audit")}/streams/${created.streamId}?${V}`,
    );
    expect(del.status).toBe(204);
    expect(plane().relay.closed.map((c) => c.group)).toContain(`stream.${created.streamId}`);
    const closed = (
      await plane().call("GET", `/api/devices/${dev("Dev-audit")}/streams/${created.streamId}?${V}`)
    ).json();
    expect(closed).toMatchObject({
      state: "Closed",
      closedBy: "api",
      closeCode: "ClosedByApi",
      closedAt: expect.any(String),
    });

    expect((await plane().call("DELETE", `/api/devices/${dev("Dev-audit")}/streams?${V}`)).status).toBe(204);
    const active = (
      await plane().call("GET", `/api/devices/${dev("Dev-audit")}/streams?${V}&state=Accepted`)
    ).json();
    expect(active.value).toEqual([]);
  });

  it("404 StreamNotFound for an unknown stream, 400 for a malformed id or state filter", async () => {
    expectError(
      await plane().call("GET", `/api/devices/${dev("dev1")}/streams/AAAAAAAAAAAAAAAAAAAAAA?${V}`),
      404,
      "StreamNotFound",
    );
    expectError(
      await plane().call("GET", `/api/devices/${dev("dev1")}/streams/not*an*id?${V}`),
      400,
      "InvalidRequestBody",
    );
    const error = expectError(
      await plane().call("GET", `/api/devices/${dev("dev1")}/streams?${V}&state=Open`),
      400,
      "InvalidRequestBody",
    );
    expect(error.field).toBe("query.state");
  });

  it.each([
    ["not base64", "abc"],
    ["base64 of null", Buffer.from("null").toString("base64")],
    ["base64 of a number", Buffer.from("42").toString("base64")],
    ["base64 of text", Buffer.from("hello").toString("base64")],
    ["an object without a partition key", Buffer.from('{"nextRowKey":"s~x"}').toString("base64")],
    ["a key that is not a string", Buffer.from('{"nextPartitionKey":{"a":1}}').toString("base64")],
    ["an extra field", Buffer.from('{"nextPartitionKey":"p","x":1}').toString("base64")],
    ["control characters", Buffer.from('{"nextPartitionKey":"p\\u0000"}').toString("base64")],
    ["base64url instead of base64", Buffer.from('{"nextPartitionKey":"p>>?"}').toString("base64url")],
  ])("400 naming continuationToken for %s, never a 500", async (_label, token) => {
    const res = await plane().call(
      "GET",
      `/api/devices/${dev("dev1")}/streams?${V}&continuationToken=${encodeURIComponent(token)}`,
    );
    const error = expectError(res, 400, "InvalidRequestBody");
    expect(error.field).toBe("query.continuationToken");
    expect(error.message).toMatch(/^query\.continuationToken: not a continuation token/);
  });
});

describe("relay events (Web PubSub CloudEvents)", () => {
  const ceHeaders = (
    type: string,
    userId: string,
    connectionId: string,
    signature = signConnectionId(WPS_KEY, connectionId),
  ) => ({
    "ce-specversion": "1.0",
    "ce-type": type,
    "ce-source": `/hubs/streams/client/${connectionId}`,
    "ce-id": "1",
    "ce-hub": "streams",
    "ce-userId": userId,
    "ce-connectionId": connectionId,
    "ce-signature": signature,
    "content-type": "application/json",
  });

  it("answers the abuse-protection handshake only for the Web PubSub origin", async () => {
    const ok = await plane().call("OPTIONS", "/api/relay/events", {
      auth: null,
      headers: { "webhook-request-origin": "localhost" },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("webhook-allowed-origin")).toBe("localhost");
    expectError(
      await plane().call("OPTIONS", "/api/relay/events", {
        auth: null,
        headers: { "webhook-request-origin": "evil.example" },
      }),
      403,
      "Forbidden",
    );
  });

  it("admits the service side once, refuses reuse and forged signatures, and ends the stream on disconnect", async () => {
    const { streamId } = (await open("Dev-events")).json();
    const service = relayUserId(streamId, "service");
    const connect = (connectionId: string, signature?: string) =>
      plane().call("POST", "/api/relay/events", {
        auth: null,
        headers: ceHeaders("azure.webpubsub.sys.connect", service, connectionId, signature),
        body: { claims: {}, query: {}, headers: {}, subprotocols: ["protobuf.webpubsub.azure.v1"] },
      });
    expectError(await connect("c-forged", signConnectionId("wrong-key", "c-forged")), 401, "Unauthenticated");
    const first = await connect("c1");
    expect(first.status).toBe(200);
    expect(first.json()).toEqual({ userId: service, groups: [`stream.${streamId}`] });
    expectError(await connect("c2"), 401, "Unauthenticated");

    const disconnected = await plane().call("POST", "/api/relay/events", {
      auth: null,
      headers: ceHeaders("azure.webpubsub.sys.disconnected", service, "c1"),
      body: { reason: "client closed" },
    });
    expect(disconnected.status).toBe(204);
    const shown = (
      await plane().call("GET", `/api/devices/${dev("Dev-events")}/streams/${streamId}?${V}`)
    ).json();
    expect(shown).toMatchObject({ state: "Closed", closedBy: "service", closeReason: "client closed" });
  });

  it("records byte counts reported by a side", async () => {
    const { streamId } = (await open("Dev-bytes")).json();
    const res = await plane().call("POST", "/api/relay/events", {
      auth: null,
      headers: ceHeaders("azure.webpubsub.user.report", relayUserId(streamId, "device"), `dev-${streamId}`),
      body: { bytesSent: 5_000_000_000 },
    });
    expect(res.status).toBe(204);
    const shown = (
      await plane().call("GET", `/api/devices/${dev("Dev-bytes")}/streams/${streamId}?${V}`)
    ).json();
    expect(shown.bytesFromDevice).toBe(5_000_000_000);
    // One report per connection: a repeat fails, and Web PubSub then drops the client.
    const again = await plane().call("POST", "/api/relay/events", {
      auth: null,
      headers: ceHeaders("azure.webpubsub.user.report", relayUserId(streamId, "device"), `dev-${streamId}`),
      body: { bytesSent: 1 },
    });
    expect(expectError(again, 409, "ReportRefused").message).toMatch(/already reported/);
    const stranger = await plane().call("POST", "/api/relay/events", {
      auth: null,
      headers: ceHeaders("azure.webpubsub.user.report", relayUserId(streamId, "service"), "not-joined"),
      body: { bytesSent: 1 },
    });
    expectError(stranger, 409, "ReportRefused");
    const after = (
      await plane().call("GET", `/api/devices/${dev("Dev-bytes")}/streams/${streamId}?${V}`)
    ).json();
    expect(after.bytesFromDevice).toBe(5_000_000_000);
    expect(after.bytesFromService).toBeUndefined();
  });
});

describe("service routes", () => {
  it("serves health and the OpenAPI document anonymously", async () => {
    const health = await plane().call("GET", "/api/health", { auth: null });
    expect(health.json()).toMatchObject({ status: "ok" });
    const doc = (await plane().call("GET", "/api/openapi.json", { auth: null })).json();
    expect(doc.openapi).toBe("3.1.0");
    const create = doc.paths["/api/devices/{deviceId}/streams"].post;
    expect(
      create.requestBody.content["application/json"].schema.properties.handshakeTimeoutSeconds,
    ).toMatchObject({
      minimum: 5,
      maximum: 60,
      default: 60,
    });
    expect(Object.keys(create.responses)).toEqual(
      expect.arrayContaining(["201", "404", "409", "429", "504"]),
    );
    expect(doc.paths["/api/health"].get.security).toEqual([]);
    const params = doc.paths["/api/devices/{deviceId}/modules/{moduleId}/streams"].post.parameters;
    for (const name of ["deviceId", "moduleId"]) {
      expect(params.find((p: { name: string }) => p.name === name)).toMatchObject({
        in: "path",
        schema: {
          type: "string",
          pattern: "^[A-Za-z0-9_-]{1,171}$",
          description: expect.stringMatching(/base64url/),
        },
      });
    }
    expect(doc.info.description).toMatch(/`Demo-Device-01` as `RGVtby1EZXZpY2UtMDE`/);
  });

  it("requires authentication for the endpoints document", async () => {
    expectError(await plane().call("GET", `/api/endpoints?${V}`, { auth: null }), 401, "Unauthenticated");
    const res = (await plane().call("GET", `/api/endpoints?${V}`)).json();
    expect(res).toEqual({
      relay: { endpoint: "ws://relay.test/client/hubs/streams", hub: "streams" },
      iotHub: { hostName: "localhost:8443", methodName: "deviceStream" },
      apiVersions: ["2026-12-01"],
    });
  });

  it("reports a bad configuration as 503 naming the settings, never their values", async () => {
    const table = createRouteTable(
      lazyServices(() => ({ SERVICE_SAS_POLICIES: "[{]", TABLES_CONNECTION_STRING: "secret-value" })),
    );
    const res = await dispatch(table, "GET", "/api/health", { auth: null });
    const error = expectError(res, 503, "ConfigurationError");
    expect(error.message).toMatch(/SERVICE_SAS_POLICIES.*WEBPUBSUB_CONNECTION_STRING/s);
    expect(error.message).not.toContain("secret-value");
  });
});
