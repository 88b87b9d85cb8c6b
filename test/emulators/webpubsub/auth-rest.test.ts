import http from "node:http";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { signHs256 } from "../../../emulators/webpubsub/jwt";
import type { WebPubSubEmulator } from "../../../emulators/webpubsub";
import { KEY, rawClient, serviceClient, startEmulator, upgradeStatus } from "./helpers";

let emulator: WebPubSubEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.close();
});

const now = (): number => Math.floor(Date.now() / 1000);

describe("client tokens", () => {
  const aud = (): string => `${emulator.endpoint}/client/hubs/chat`;
  const url = (token: string): string =>
    `${emulator.endpoint.replace("http", "ws")}/client/hubs/chat?access_token=${token}`;

  it.each([
    ["missing", 401, () => `${emulator.endpoint.replace("http", "ws")}/client/hubs/chat`],
    ["forged", 401, () => url(signHs256({ aud: aud(), exp: now() + 60 }, "not-the-key"))],
    ["expired", 401, () => url(signHs256({ aud: aud(), exp: now() - 3600 }, KEY))],
    ["without exp", 401, () => url(signHs256({ aud: aud() }, KEY))],
    [
      "for another hub",
      401,
      () => url(signHs256({ aud: `${emulator.endpoint}/client/hubs/other`, exp: now() + 60 }, KEY)),
    ],
    ["garbage", 401, () => url("abc.def")],
    [
      "with a bad group claim",
      400,
      () => url(signHs256({ aud: aud(), exp: now() + 60, "webpubsub.group": 5 }, KEY)),
    ],
    [
      "with an empty group name",
      400,
      () => url(signHs256({ aud: aud(), exp: now() + 60, "webpubsub.group": [""] }, KEY)),
    ],
    [
      "valid, hub name in another case",
      101,
      () => url(signHs256({ aud: `${emulator.endpoint}/client/hubs/CHAT`, exp: now() + 60 }, KEY)),
    ],
    ["expired within the clock skew", 101, () => url(signHs256({ aud: aud(), exp: now() - 60 }, KEY))],
  ])("a %s token gets %d", async (_name, status, makeUrl) => {
    expect(await upgradeStatus(makeUrl())).toBe(status);
  });

  it("accepts the token in Authorization: Bearer and on /client/?hub=", async () => {
    const { token } = await serviceClient(emulator, "chat").getClientAccessToken();
    const ws = emulator.endpoint.replace("http", "ws");
    expect(await upgradeStatus(`${ws}/client/hubs/chat`, { Authorization: `Bearer ${token}` })).toBe(101);
    expect(await upgradeStatus(`${ws}/client/?hub=chat&access_token=${token}`)).toBe(101);
  });
});

describe("REST data plane through @azure/web-pubsub", () => {
  async function connect(hub: string, userId: string, groups: string[] = []) {
    const { url } = await serviceClient(emulator, hub).getClientAccessToken({ userId, groups });
    const client = await rawClient(url, ["json.webpubsub.azure.v1"]);
    const connected = JSON.parse((await client.frames.wait()).data.toString());
    return { ...client, id: connected.connectionId as string };
  }
  const messages = (c: { frames: { items: { data: Buffer }[] } }) =>
    c.frames.items.map((f) => JSON.parse(f.data.toString())).filter((m) => m.type === "message");

  it("sends to hub, group, user and connection with each content type", async () => {
    const svc = serviceClient(emulator, "rest1");
    const a = await connect("rest1", "alice", ["g"]);
    const b = await connect("rest1", "bob");
    await svc.sendToAll({ hello: "all" });
    await svc.group("g").sendToAll("to group", { contentType: "text/plain" });
    await svc.sendToUser("bob", Buffer.from([1, 2, 3]));
    await svc.sendToConnection(a.id, { n: 1 });
    await svc.sendToAll("not bob", { contentType: "text/plain" });
    await a.frames.waitCount(4, (f) => f.data.toString().includes('"message"'));
    await b.frames.waitCount(3, (f) => f.data.toString().includes('"message"'));
    expect(messages(a)).toEqual([
      { type: "message", from: "server", dataType: "json", data: { hello: "all" } },
      { type: "message", from: "server", dataType: "text", data: "to group" },
      { type: "message", from: "server", dataType: "json", data: { n: 1 } },
      { type: "message", from: "server", dataType: "text", data: "not bob" },
    ]);
    expect(messages(b)).toEqual([
      { type: "message", from: "server", dataType: "json", data: { hello: "all" } },
      { type: "message", from: "server", dataType: "binary", data: "AQID" },
      { type: "message", from: "server", dataType: "text", data: "not bob" },
    ]);
    a.ws.close();
    b.ws.close();
  });

  it("answers exists, manages membership, lists group connections and closes by scope", async () => {
    const svc = serviceClient(emulator, "rest2");
    const a = await connect("rest2", "alice", ["g"]);
    const b = await connect("rest2", "bob");
    const c = await connect("rest2", "carol", ["g"]);
    expect(await svc.connectionExists(a.id)).toBe(true);
    expect(await svc.connectionExists("nope")).toBe(false);
    expect(await svc.userExists("bob")).toBe(true);
    expect(await svc.userExists("dave")).toBe(false);
    expect(await svc.groupExists("g")).toBe(true);
    await svc.group("g").addConnection(b.id);
    await svc.group("g").removeConnection(c.id);
    const listed: { connectionId: string; userId?: string }[] = [];
    for await (const m of await svc.group("g").listConnections({ maxPageSize: 1 })) listed.push(m);
    expect(listed.sort((x, y) => (x.userId! < y.userId! ? -1 : 1))).toEqual([
      { connectionId: a.id, userId: "alice" },
      { connectionId: b.id, userId: "bob" },
    ]);
    await svc.group("g").addUser("carol");
    await svc.group("g").removeUser("carol");
    await svc.grantPermission(b.id, "sendToGroup", { targetName: "g" });
    expect(await svc.hasPermission(b.id, "sendToGroup", { targetName: "g" })).toBe(true);
    await svc.revokePermission(b.id, "sendToGroup", { targetName: "g" });
    expect(await svc.hasPermission(b.id, "sendToGroup", { targetName: "g" })).toBe(false);

    await svc.group("g").closeAllConnections({ reason: "group done" });
    expect(await a.closed).toEqual({ code: 1000, reason: "group done" });
    await b.closed;
    expect(await svc.connectionExists(c.id)).toBe(true);
    c.ws.close();
    expect(await svc.connectionExists(a.id)).toBe(false);
    expect(await svc.groupExists("g")).toBe(false);

    const d = await connect("rest2", "dave");
    const e = await connect("rest2", "erin");
    await svc.closeUserConnections("dave");
    await d.closed;
    await svc.closeConnection(e.id, { reason: "bye" });
    expect(await e.closed).toEqual({ code: 1000, reason: "bye" });
    const disconnected = e.frames.items
      .map((f) => JSON.parse(f.data.toString()))
      .find((m) => m.type === "system" && m.event === "disconnected");
    expect(disconnected).toEqual({ type: "system", event: "disconnected", message: "bye" });
    const f = await connect("rest2", "frank");
    await svc.closeAllConnections();
    await f.closed;
  });

  it("mints tokens through :generateToken (the keyless path) that the client endpoint accepts", async () => {
    // The SDK refuses a TokenCredential over http, so the test calls the route as the SDK would.
    const res = await fetch(
      `${emulator.endpoint}/api/hubs/keyless/:generateToken?api-version=2024-12-01&userId=u1&role=webpubsub.sendToGroup.g&group=g&minutesToExpire=5`,
      {
        method: "POST",
        headers: {
          Authorization: `Bearer ${signHs256({ aud: `${emulator.endpoint}/api/hubs/keyless/:generateToken`, exp: now() + 60 }, KEY)}`,
        },
      },
    );
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const client = await rawClient(
      `${emulator.endpoint.replace("http", "ws")}/client/hubs/keyless?access_token=${token}`,
      ["json.webpubsub.azure.v1"],
    );
    const connected = JSON.parse((await client.frames.wait()).data.toString());
    expect(connected).toMatchObject({ type: "system", event: "connected", userId: "u1" });
    client.ws.close();
  });

  it("rejects unauthenticated and forged REST calls with 401 and the error code header", async () => {
    const forged = new WebPubSubServiceClient(
      `Endpoint=${emulator.endpoint};AccessKey=wrong-key;Version=1.0;`,
      "chat",
      {
        allowInsecureConnection: true,
      },
    );
    await expect(forged.sendToAll({ a: 1 })).rejects.toMatchObject({ statusCode: 401 });
    const res = await fetch(`${emulator.endpoint}/api/hubs/chat/:send?api-version=2024-12-01`, {
      method: "POST",
      body: "x",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("x-ms-error-code")).toBe("Unauthorized");
    const health = await fetch(`${emulator.endpoint}/api/health`, { method: "HEAD" });
    expect(health.status).toBe(200);
  });

  it("answers 404 for unknown connections and 413 for oversized bodies", async () => {
    const svc = serviceClient(emulator, "rest3");
    await expect(svc.group("g").addConnection("missing")).rejects.toMatchObject({ statusCode: 404 });
    await expect(svc.sendToAll(Buffer.alloc(1024 * 1024 + 1))).rejects.toMatchObject({ statusCode: 413 });
  });
});

describe("malformed requests", () => {
  const bearer = (url: string): Record<string, string> => ({
    Authorization: `Bearer ${signHs256({ aud: url, exp: now() + 60 }, KEY)}`,
  });

  it.each([
    ["invalid JSON body", "/api/hubs/chat/:send", { "content-type": "application/json" }, "{oops", 400],
    ["an unsupported content type", "/api/hubs/chat/:send", { "content-type": "image/png" }, "x", 415],
    ["a malformed path", "/api/hubs/chat/groups/%E0%A4%A/:send", { "content-type": "text/plain" }, "x", 400],
    ["a bad hub name", "/api/hubs/1chat/:send", { "content-type": "text/plain" }, "x", 400],
    [
      "an OData filter",
      "/api/hubs/chat/:send?filter=userId%20eq%20'a'",
      { "content-type": "text/plain" },
      "x",
      400,
    ],
    ["an unknown route", "/api/hubs/chat/:addToGroups", { "content-type": "application/json" }, "{}", 404],
  ])("answers %s with its status and an error body", async (_name, path, headers, body, status) => {
    const url = `${emulator.endpoint}${path}`;
    const res = await fetch(url, { method: "POST", headers: { ...headers, ...bearer(url) }, body });
    expect(res.status).toBe(status);
    expect(res.headers.get("x-ms-error-code")).toEqual(expect.any(String));
    expect(await res.json()).toEqual({ code: expect.any(String), message: expect.any(String) });
  });

  it("refuses an upgrade that is not a valid WebSocket handshake before any event", async () => {
    const { token } = await serviceClient(emulator, "chat").getClientAccessToken();
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${emulator.endpoint}/client/hubs/chat?access_token=${token}`, {
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "short",
        },
      });
      req.on("response", (r) => resolve(r.statusCode ?? 0));
      req.on("upgrade", () => reject(new Error("upgraded")));
      req.on("error", reject);
      req.end();
    });
    expect(res).toBe(400);
  });
});
