/**
 * The gateway server against the in-process local stack: routing by host name, proxying over
 * DeviceHttpAgent (keep-alive, streaming bodies both ways, WebSocket upgrades), the statuses of
 * each failure, access logs, and recovery when devices and streams come and go. Clients here send
 * tickets as `Authorization: Bearer`; test/gateway/e2e.test.ts logs in through the one-time URL.
 */
import http from "node:http";
import { createHash } from "node:crypto";
import WebSocket, { WebSocketServer } from "ws";
import { createGatewayAuth } from "../../client/gateway/auth";
import { labelFor } from "../../client/gateway/hostname";
import { type Gateway, type GatewayOptions, startGateway } from "../../client/gateway/server";
import { type DeviceTarget, issueTicket } from "../../client/sdk/service";
import { Recorder, deferred, withDeadline } from "../helpers/events";
import { scaled, useTarget } from "../sdk/target";
import { type DeviceWeb, deviceWeb, send } from "./helpers";

jest.setTimeout(scaled(90_000));
const stack = useTarget();

const T = {
  web: { deviceId: "Gw-Web", streamName: "web" },
  offline: { deviceId: "Gw-Offline", streamName: "web" },
  rejects: { deviceId: "Gw-Web", streamName: "telnet" },
  silent: { deviceId: "Gw-Silent", streamName: "web" },
  comes: { deviceId: "Gw-Comes-And-Goes", streamName: "web" },
  blocked: { deviceId: "Gw-Blocked", streamName: "web" },
} satisfies Record<string, DeviceTarget>;
const SECRET = Buffer.alloc(32, "gateway test secret");
type Name = keyof typeof T;
/** The device host of a target, without the port. */
const hostOf = (name: Name) => `${labelFor(T[name])}.localhost`;
const bearer = async (name: Name) => ({ authorization: `Bearer ${await issueTicket(SECRET, T[name])}` });

/** What the device's web server saw, as JSON; `/slow` and `/upload` are the streaming cases. */
const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
const hooks = {
  uploadStarted: deferred(),
  release: deferred(),
};
function webApp(req: http.IncomingMessage, res: http.ServerResponse): void {
  seen.push({ url: req.url ?? "", headers: req.headers });
  if (req.url === "/upload") {
    const hash = createHash("sha256");
    let bytes = 0;
    req.on("data", (b: Buffer) => {
      if (bytes === 0) hooks.uploadStarted.resolve();
      bytes += b.length;
      hash.update(b);
    });
    req.on("end", () => res.end(JSON.stringify({ bytes, sha256: hash.digest("hex") })));
    return;
  }
  if (req.url === "/slow") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first;");
    void hooks.release.promise.then(() => res.end("last"));
    return;
  }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ url: req.url, headers: req.headers }));
}

/** GET /slow: the first bytes as they arrive, then how the response ended. */
function slowGet(headers: http.OutgoingHttpHeaders): {
  firstBytes: Promise<string>;
  outcome: Promise<{ text: string; end: string }>;
} {
  const first = deferred<string>();
  const outcome = new Promise<{ text: string; end: string }>((resolve) => {
    let text = "";
    const req = http.get(
      {
        host: "127.0.0.1",
        port: gw.port,
        path: "/slow",
        headers: { host: `${hostOf("web")}:${gw.port}`, ...headers },
        agent: false,
      },
      (res) => {
        res.on("data", (b: Buffer) => {
          text += b.toString();
          first.resolve(text);
        });
        res.on("aborted", () => resolve({ text, end: "aborted" }));
        res.on("end", () => resolve({ text, end: res.complete ? "complete" : "incomplete" }));
      },
    );
    req.on("error", (e) => resolve({ text, end: `error ${e.message}` }));
  });
  return { firstBytes: first.promise, outcome };
}

let web: DeviceWeb;
let gw: Gateway;
const log = new Recorder<string>();

async function gateway(extra: Partial<GatewayOptions> = {}): Promise<Gateway> {
  return startGateway({
    client: stack().client(),
    baseDomain: "localhost",
    listen: { host: "127.0.0.1", port: 0 },
    auth: createGatewayAuth({ secret: SECRET }),
    allow: (t) => t.deviceId !== T.blocked.deviceId,
    handshakeTimeoutInMs: 5000,
    log: log.push,
    ...extra,
  });
}

beforeAll(async () => {
  const server = http.createServer(webApp);
  const wss = new WebSocketServer({ server });
  wss.on("connection", (socket, req) => {
    socket.send(`hello from ${req.headers.host}`);
    socket.on("message", (m, binary) => socket.send(m, { binary }));
  });
  web = await deviceWeb(stack(), T.web.deviceId, server);
  await stack().registerDevice(T.offline.deviceId);
  await stack().registerDevice(T.blocked.deviceId);
  gw = await gateway();
}, scaled(60_000));

afterAll(async () => {
  await gw?.close();
  await web?.close();
});

describe("gateway: proxying", () => {
  it("sends keep-alive requests to the device's web server with X-Forwarded-*, its own Host and no gateway credential; one access line each, without the query", async () => {
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      keepAlive.on("free", (s) => sockets.add(s));
      const a = await send(gw.port, hostOf("web"), "/info?ticket=secret-query", {
        agent: keepAlive,
        headers: await bearer("web"),
      });
      const b = await send(gw.port, hostOf("web").toUpperCase(), "/second", {
        agent: keepAlive,
        headers: await bearer("web"),
      });
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(sockets.size).toBe(1); // one connection to the gateway for both
      const saw = a.json() as { url: string; headers: Record<string, string> };
      expect(saw.url).toBe("/info?ticket=secret-query");
      expect(saw.headers).toMatchObject({
        host: "localhost",
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-proto": "http",
        "x-forwarded-host": `${hostOf("web")}:${gw.port}`,
      });
      expect(saw.headers.authorization).toBeUndefined();
      const lines = await log.waitFor(
        (l) => l.filter((x) => x.includes("Gw-Web web GET")).length >= 2,
        "two access lines",
      );
      const mine = lines.filter((x) => x.includes("Gw-Web web GET"));
      expect(mine[0]).toMatch(/^gateway: Gw-Web web GET \/info 200 in=0 out=\d+ \d+ms$/);
      expect(mine[1]).toMatch(/^gateway: Gw-Web web GET \/second 200 in=0 out=\d+ \d+ms$/);
      expect(lines.join("\n")).not.toMatch(/secret-query|Bearer/);
    } finally {
      keepAlive.destroy();
    }
  });

  it("rewrites Host as configured: the original host name, or a fixed value", async () => {
    for (const [hostHeader, expected] of [
      ["original", (port: number) => `${hostOf("web")}:${port}`],
      ["device.local:8443", () => "device.local:8443"],
    ] as const) {
      const other = await gateway({ hostHeader });
      try {
        const r = await send(other.port, hostOf("web"), "/", { headers: await bearer("web") });
        expect((r.json() as { headers: { host: string } }).headers.host).toBe(expected(other.port));
      } finally {
        await other.close();
      }
    }
  });

  it("streams a request body to the device before it has all been sent, and 32 MB arrive intact", async () => {
    const total = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024);
    const expected = createHash("sha256");
    const req = http.request({
      host: "127.0.0.1",
      port: gw.port,
      method: "POST",
      path: "/upload",
      headers: { host: `${hostOf("web")}:${gw.port}`, ...(await bearer("web")) },
      agent: false,
    });
    const reply = new Promise<string>((resolve, reject) => {
      req.on("response", (res) => {
        let text = "";
        res.on("data", (b: Buffer) => (text += b.toString()));
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
    });
    chunk.fill(1);
    expected.update(chunk);
    req.write(chunk);
    // The device has bytes while 31 MB are still to come: nothing buffers the body whole.
    await withDeadline(hooks.uploadStarted.promise, scaled(30_000), "the device to see the upload start");
    for (let sent = chunk.length, i = 2; sent < total; sent += chunk.length, i++) {
      chunk.fill(i);
      expected.update(chunk);
      if (!req.write(Buffer.from(chunk))) await new Promise((r) => req.once("drain", r));
    }
    req.end();
    expect(JSON.parse(await reply)).toEqual({ bytes: total, sha256: expected.digest("hex") });
  });

  it("streams a response to the user as the device writes it", async () => {
    const { firstBytes, outcome } = slowGet(await bearer("web"));
    // The device has not ended its response: the user already has its first bytes.
    expect(await withDeadline(firstBytes, scaled(30_000), "the first chunk")).toBe("first;");
    hooks.release.resolve();
    expect(await outcome).toEqual({ text: "first;last", end: "complete" });
  });

  it("passes a WebSocket upgrade through (Origin of the device's own host) and refuses another Origin", async () => {
    const url = `ws://127.0.0.1:${gw.port}/socket`;
    const host = `${hostOf("web")}:${gw.port}`;
    const socket = new WebSocket(url, {
      headers: { host, ...(await bearer("web")) },
      origin: `http://${host}`,
    });
    const messages = new Recorder<string>();
    socket.on("message", (m) => messages.push((m as Buffer).toString()));
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    socket.send("ping through the gateway");
    await messages.waitFor((m) => m.length === 2, "greeting and echo", scaled(30_000));
    expect(messages.items).toEqual(["hello from localhost", "ping through the gateway"]);
    socket.close();

    const foreign = new WebSocket(url, {
      headers: { host, ...(await bearer("web")) },
      origin: "http://other.localhost",
    });
    const status = await new Promise<number>((resolve) =>
      foreign.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)),
    );
    expect(status).toBe(403);
    foreign.on("error", () => undefined);
    foreign.terminate();
  });
});

describe("gateway: statuses", () => {
  const expectError = (r: { status: number; json(): any }, status: number, code: string) => {
    expect({ status: r.status, code: (r.json() as { error: { code: string } }).error.code }).toEqual({
      status,
      code,
    });
    expect(typeof (r.json() as { error: { message: string } }).error.message).toBe("string");
  };

  it("an unknown host name is a 404 UnknownHost, whatever the credentials", async () => {
    expectError(
      await send(gw.port, `${labelFor(T.web)}.example.com`, "/", { headers: await bearer("web") }),
      404,
      "UnknownHost",
    );
    expectError(await send(gw.port, "localhost", "/"), 404, "UnknownHost");
  });

  it("no ticket is a 401; a ticket for another device is a 403 (the ticket is the only way to a device); a device off the allow-list is a 403 NotAllowed", async () => {
    expectError(await send(gw.port, hostOf("web"), "/"), 401, "LoginRequired");
    expectError(
      await send(gw.port, hostOf("web"), "/", { headers: await bearer("offline") }),
      403,
      "TicketForAnotherHost",
    );
    expectError(
      await send(gw.port, hostOf("blocked"), "/", { headers: await bearer("blocked") }),
      403,
      "NotAllowed",
    );
    // Nothing was opened for them.
    expect(seen.some((s) => String(s.headers["x-forwarded-host"]).startsWith(hostOf("blocked")))).toBe(false);
  });

  it("an offline device is a 502 DeviceNotOnline", async () => {
    expectError(
      await send(gw.port, hostOf("offline"), "/", { headers: await bearer("offline") }),
      502,
      "DeviceNotOnline",
    );
  });

  it("a device that rejects the stream name is a 502 StreamRejected with the device's reason", async () => {
    const r = await send(gw.port, hostOf("rejects"), "/", { headers: await bearer("rejects") });
    expectError(r, 502, "StreamRejected");
    expect((r.json() as { error: { message: string } }).error.message).toMatch(/'telnet' is not served/);
  });

  it("a device that never answers is a 504 DeviceTimeout", async () => {
    const device = await stack().device(T.silent.deviceId);
    device.onDeviceMethod("deviceStream", () => undefined); // receives, never responds
    expectError(
      await send(gw.port, hostOf("silent"), "/", { headers: await bearer("silent") }),
      504,
      "DeviceTimeout",
    );
    await device.close();
  });

  it("a path that is not origin-form is a 400", async () => {
    expectError(
      await send(gw.port, hostOf("web"), "*", { method: "OPTIONS", headers: await bearer("web") }),
      400,
      "InvalidRequestTarget",
    );
  });
});

describe("gateway: devices and streams come and go", () => {
  it("stays up while a device goes offline and comes back", async () => {
    const up = async () => send(gw.port, hostOf("comes"), "/", { headers: await bearer("comes") });
    const first = await deviceWeb(stack(), T.comes.deviceId, http.createServer(webApp));
    expect((await up()).status).toBe(200);
    await first.close();
    // The stream ended with the device's listener; the next request asks for a new one.
    expect((await up()).json()).toMatchObject({ error: { code: "DeviceNotOnline" } });
    const again = await deviceWeb(stack(), T.comes.deviceId, http.createServer(webApp));
    try {
      expect((await up()).status).toBe(200);
    } finally {
      await again.close();
    }
  });

  it("a stream torn down mid-response ends that response, and the next request opens a new stream", async () => {
    hooks.release = deferred();
    const { firstBytes, outcome } = slowGet(await bearer("web"));
    await withDeadline(firstBytes, scaled(30_000), "the user to have the response's first bytes");
    const before = web.streams.length;
    await Promise.all(web.streams.map((s) => s.close("GoingAway", "test tears the stream down")));
    const { end } = await withDeadline(outcome, scaled(30_000), "the cut response to end");
    expect(end).not.toBe("complete");
    hooks.release.resolve();
    const next = await send(gw.port, hostOf("web"), "/after", { headers: await bearer("web") });
    expect(next.status).toBe(200);
    expect(web.streams.length).toBeGreaterThan(before);
    expect(gw.activeTargets).toBeGreaterThan(0);
  });

  it("closes a target's streams once it has been idle, and opens them again on demand", async () => {
    const quick = await gateway({ idleCloseInMs: 200 });
    try {
      expect((await send(quick.port, hostOf("web"), "/", { headers: await bearer("web") })).status).toBe(200);
      const closed = web.streams.at(-1)!;
      await withDeadline(
        new Promise((r) => closed.once("close", r)),
        scaled(30_000),
        "the idle stream to close",
      );
      expect(quick.activeTargets).toBe(0);
      expect((await send(quick.port, hostOf("web"), "/", { headers: await bearer("web") })).status).toBe(200);
    } finally {
      await quick.close();
    }
  });
});
