import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { connect, createServer, type AddressInfo } from "node:net";
import { once } from "node:events";
import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from "@azure/functions";
import { Errors } from "../../shared/errors";
import type { HttpRouteDef, RouteTable, TimerDef } from "../../shared/http/routeTypes";
import { startLocalHost, type LocalHost } from "../../devstack/host";
import { PortInUseError } from "../../devstack/ports";
import { deferred, onceWithin, withDeadline } from "../helpers/events";
import { recordingLogger } from "../helpers/logger";

jest.setTimeout(15_000);

function http(
  name: string,
  methods: HttpRouteDef["methods"],
  route: string,
  handler: (req: HttpRequest, ctx: InvocationContext) => Promise<HttpResponseInit>,
): HttpRouteDef {
  return { name, methods, route, handler };
}

/** Lets a test hold the `slow` handler in progress: `entered` when it runs, it returns on `release`. */
const slowGate = { entered: deferred(), release: deferred() };

let echoCalls = 0;

const sampleRoutes: HttpRouteDef[] = [
  http("health", ["GET"], "health", async () => ({ jsonBody: { status: "ok" } })),
  http("createStream", ["POST"], "devices/{deviceId}/streams", async (req, ctx) => ({
    status: 201,
    jsonBody: {
      functionName: ctx.functionName,
      params: req.params,
      apiVersion: req.query.get("api-version"),
      xs: req.query.getAll("x"),
      url: req.url,
      contentType: req.headers.get("content-type"),
      body: await req.json(),
    },
  })),
  http("getStream", ["GET", "DELETE"], "devices/{deviceId}/streams/{streamId}", async (req) => ({
    jsonBody: { method: req.method, params: req.params },
  })),
  http("echoBytes", ["POST"], "echo", async (req) => {
    echoCalls++;
    return {
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array(await req.arrayBuffer()),
    };
  }),
  // Answers with the first chunk of the body while the client is still sending the rest.
  http("firstChunk", ["POST"], "first-chunk", async (req) => {
    const reader = req.body!.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    return { jsonBody: { first: Buffer.from(value as Uint8Array).toString("utf8") } };
  }),
  http("streamed", ["GET"], "streamed", async () => ({
    body: (async function* () {
      yield new TextEncoder().encode("hello, ");
      yield new TextEncoder().encode("world");
    })(),
  })),
  http("cookies", ["GET"], "cookies", async () => ({
    status: 202,
    headers: new Headers([
      ["x-one", "1"],
      ["set-cookie", "a=1"],
    ]),
    cookies: [{ name: "b", value: "2", path: "/", httpOnly: true, sameSite: "Strict", maxAge: 60 }],
    body: "accepted",
  })),
  http("noContent", ["DELETE"], "nothing", async () => ({ status: 204, body: "ignored" })),
  http("boom", ["GET"], "boom", async () => {
    throw new Error("secret internal detail");
  }),
  http("forbidden", ["GET"], "forbidden", async () => {
    throw Errors.forbidden("not for you");
  }),
  http("badHeader", ["GET"], "bad-header", async () => ({ headers: { "x-bad": "a\nb" } })),
  http("logs", ["GET"], "logs", async (_req, ctx) => {
    ctx.log("hello from", ctx.functionName);
    ctx.warn("careful");
    return { status: 204 };
  }),
  http("slow", ["GET"], "slow", async () => {
    slowGate.entered.resolve();
    await slowGate.release.promise;
    return { body: "finally" };
  }),
];

async function errorBody(res: Response): Promise<{ code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return body.error;
}

describe("local functions host", () => {
  const { logger, entries } = recordingLogger();
  let host: LocalHost;
  let api: string;

  beforeAll(async () => {
    host = await startLocalHost({
      table: { http: sampleRoutes, timers: [] },
      port: 0,
      logger,
      maxBodyBytes: 1024,
    });
    api = `${host.url}/api`;
  });
  afterAll(() => host.close());

  it("listens on a free port and reports its URL", () => {
    expect(host.port).toBeGreaterThan(0);
    expect(host.url).toBe(`http://127.0.0.1:${host.port}`);
  });

  it("passes JSON, encoded route params and the query through a real HttpRequest", async () => {
    const deviceId = "a#b?c%1";
    const res = await fetch(
      `${api}/devices/${encodeURIComponent(deviceId)}/streams?api-version=2025-01-01&x=1&x=2`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "ssh", data: { n: 1 } }),
      },
    );
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({
      functionName: "createStream",
      params: { deviceId },
      apiVersion: "2025-01-01",
      xs: ["1", "2"],
      url: `${api}/devices/a%23b%3Fc%251/streams?api-version=2025-01-01&x=1&x=2`,
      contentType: "application/json",
      body: { name: "ssh", data: { n: 1 } },
    });
  });

  it("decodes the path before routing by default: %2F separates, %2E%2E climbs, one decode only", async () => {
    const get = async (path: string) => {
      const res = await fetch(`${api}${path}`);
      return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
    };
    expect(await get("/devices/a%2Fb/streams/S1")).toEqual({ status: 404, body: "" });
    expect(await get("/devices/d/streams/%2E%2E/streams/S1")).toEqual({
      status: 200,
      body: { method: "GET", params: { deviceId: "d", streamId: "S1" } },
    });
    expect(await get("/devices/a%2525/streams/S1")).toEqual({
      status: 200,
      body: { method: "GET", params: { deviceId: "a%25", streamId: "S1" } },
    });
  });

  it("with decodeBeforeRoute off, decodes each segment after the split instead", async () => {
    const splitFirst = await startLocalHost({
      table: { http: sampleRoutes, timers: [] },
      port: 0,
      logger: recordingLogger().logger,
      decodeBeforeRoute: false,
    });
    try {
      const res = await fetch(`${splitFirst.url}/api/devices/a%2Fb/streams/S1`);
      expect(await res.json()).toEqual({ method: "GET", params: { deviceId: "a/b", streamId: "S1" } });
    } finally {
      await splitFirst.close();
    }
  });

  it("matches literals case-insensitively and serves several methods on one route", async () => {
    const get = await fetch(`${api}/DEVICES/Dev1/Streams/S1`);
    expect(await get.json()).toEqual({ method: "GET", params: { deviceId: "Dev1", streamId: "S1" } });
    const del = await fetch(`${api}/devices/Dev1/streams/S1`, { method: "DELETE" });
    expect(await del.json()).toEqual({ method: "DELETE", params: { deviceId: "Dev1", streamId: "S1" } });
  });

  it("echoes binary bodies byte for byte", async () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 256);
    const res = await fetch(`${api}/echo`, { method: "POST", body: bytes });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-length")).toBe("1000");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
  });

  it("sends an async-iterable body", async () => {
    const res = await fetch(`${api}/streamed`);
    expect(await res.text()).toBe("hello, world");
  });

  it("writes status, Headers, set-cookie headers and cookies", async () => {
    const res = await fetch(`${api}/cookies`);
    expect(res.status).toBe(202);
    expect(res.headers.get("x-one")).toBe("1");
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"]);
    expect(await res.text()).toBe("accepted");
  });

  it("sends no body with a 204", async () => {
    const res = await fetch(`${api}/nothing`, { method: "DELETE" });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
  });

  it.each([
    ["an unknown route", "GET", "/nowhere?token=x"],
    ["a method the route does not list", "PUT", "/devices/d/streams/s"],
    ["HEAD on a GET route", "HEAD", "/streamed"],
    ["GET on a POST-only route", "GET", "/echo"],
  ])("answers %s with an empty 404, as the Functions host does", async (_what, method, path) => {
    const res = await fetch(`${api}${path}`, { method, ...(method === "PUT" ? { body: "x" } : {}) });
    expect(res.status).toBe(404);
    expect(res.headers.get("allow")).toBeNull();
    expect(res.headers.get("content-length")).toBe("0");
    expect(await res.text()).toBe("");
  });

  it("maps a throwing handler to a 500 that reveals nothing, logs it, and keeps serving", async () => {
    const res = await fetch(`${api}/boom`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain("secret");
    expect(JSON.parse(text)).toEqual({
      error: { code: "InternalServerError", message: "An internal error occurred." },
    });
    await entries.waitFor(
      (all) => all.some((e) => e.level === "error" && e.message.includes("secret internal detail")),
      "the handler's error in the log",
    );
    expect((await fetch(`${api}/health`)).status).toBe(200);
  });

  it("maps a thrown ApiError to its own status", async () => {
    const res = await fetch(`${api}/forbidden`);
    expect(res.status).toBe(403);
    expect(await errorBody(res)).toEqual({ code: "Forbidden", message: "not for you" });
  });

  it("turns a response the host cannot send into a 500", async () => {
    const res = await fetch(`${api}/bad-header`);
    expect(res.status).toBe(500);
    expect((await errorBody(res)).code).toBe("InternalServerError");
  });

  it("refuses a body above the limit with 413, by Content-Length or while reading, and keeps serving", async () => {
    const declared = await fetch(`${api}/echo`, { method: "POST", body: new Uint8Array(2048) });
    expect(declared.status).toBe(413);
    expect((await errorBody(declared)).code).toBe("RequestBodyTooLarge");

    const chunked = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${api}/echo`, { method: "POST", agent: false }, resolve);
      req.on("error", reject);
      req.write(Buffer.alloc(700));
      req.end(Buffer.alloc(700));
    });
    expect(chunked.statusCode).toBe(413);
    expect(chunked.headers["x-ms-error-code"]).toBe("RequestBodyTooLarge");
    chunked.resume();
    await once(chunked, "end");

    expect((await fetch(`${api}/health`)).status).toBe(200);
  });

  it("hands the handler the body as a stream, before the client has sent it all", async () => {
    const upload = httpRequest(`${api}/first-chunk`, { method: "POST", agent: false });
    upload.on("error", () => {});
    const answered = new Promise<IncomingMessage>((resolve) => upload.once("response", resolve));
    upload.write("hello");
    try {
      // The body never ends: only a handler that reads it as it arrives can answer.
      const res = await withDeadline(answered, 10_000, "the answer before the end of the body");
      expect(res.statusCode).toBe(200);
      expect(res.headers.connection).toBe("close");
      let text = "";
      for await (const chunk of res) text += String(chunk);
      expect(JSON.parse(text)).toEqual({ first: "hello" });
    } finally {
      upload.destroy();
    }
  });

  it("survives malformed requests and clients that vanish mid-upload", async () => {
    const garbage = connect(host.port, "127.0.0.1");
    garbage.end("NOT HTTP AT ALL\r\n\r\n");
    garbage.setEncoding("utf8");
    let reply = "";
    for await (const chunk of garbage) reply += chunk as string;
    expect(reply).toMatch(/^HTTP\/1\.1 400/);

    const echoCallsBefore = echoCalls;
    // Expect: 100-continue tells the client when the host is reading the body, so the abort lands there.
    const upload = httpRequest(`${api}/echo`, {
      method: "POST",
      agent: false,
      headers: { "content-length": "1000", expect: "100-continue" },
    });
    upload.on("error", () => {});
    upload.flushHeaders();
    await onceWithin(upload, "continue");
    upload.write(Buffer.alloc(10));
    upload.destroy();
    await entries.waitFor(
      (all) => all.some((e) => e.message === "request aborted by client" && e.fields.path === "/api/echo"),
      "the aborted upload to be noticed",
    );
    expect(entries.items.filter((e) => e.level === "error" && /aborted/i.test(e.message))).toEqual([]);
    // As with HTTP streaming on Azure, the handler runs before the body arrives and reads it itself.
    expect(echoCalls).toBe(echoCallsBefore + 1);
    expect((await fetch(`${api}/health`)).status).toBe(200);
  });

  it("logs one access line per request without the query string, and the handler's own logs", async () => {
    await fetch(`${api}/health?sig=SECRET-TOKEN`);
    await fetch(`${api}/logs`);
    const access = await entries.waitFor(
      (all) => all.some((e) => e.message === "request" && e.fields.function === "logs"),
      "the access line of /logs",
    );
    const healthLine = access.find((e) => e.message === "request" && e.fields.path === "/api/health");
    expect(healthLine?.fields).toEqual({
      method: "GET",
      path: "/api/health",
      status: 200,
      ms: expect.any(Number),
      function: "health",
    });
    expect(JSON.stringify(access)).not.toContain("SECRET-TOKEN");
    const hello = access.find((e) => e.message === "hello from logs");
    expect(hello).toMatchObject({
      level: "info",
      fields: { function: "logs", invocationId: expect.any(String) },
    });
    expect(access.find((e) => e.message === "careful")?.level).toBe("warn");
  });
});

describe("local functions host lifecycle", () => {
  it("close() lets a request in progress finish, then closes keep-alive connections", async () => {
    const host = await startLocalHost({
      table: { http: sampleRoutes, timers: [] },
      port: 0,
      logger: recordingLogger().logger,
    });
    const agent = new Agent({ keepAlive: true });
    try {
      const get = (path: string, via: Agent | false) =>
        new Promise<IncomingMessage>((resolve, reject) => {
          httpRequest(`${host.url}/api/${path}`, { agent: via }, resolve).on("error", reject).end();
        });
      const idle = await get("health", agent);
      const idleClosed = once(idle.socket, "close");
      idle.resume();
      await once(idle, "end");

      slowGate.entered = deferred();
      slowGate.release = deferred();
      const slow = get("slow", false);
      await withDeadline(slowGate.entered.promise, 10_000, "the slow handler to start");
      const closing = host.close();
      let closed = false;
      void closing.then(() => (closed = true));
      await withDeadline(idleClosed, 10_000, "the idle keep-alive socket to close");
      expect(closed).toBe(false);

      slowGate.release.resolve();
      const res = await slow;
      expect(res.statusCode).toBe(200);
      expect(res.headers.connection).toBe("close");
      res.setEncoding("utf8");
      let text = "";
      for await (const chunk of res) text += chunk as string;
      expect(text).toBe("finally");
      await withDeadline(closing, 10_000, "close()");
    } finally {
      agent.destroy();
    }
  });

  it.each([
    [
      "a function name used twice",
      {
        http: [http("Same", ["GET"], "a", async () => ({}))],
        timers: [{ name: "same", schedule: "0 * * * * *", intervalMs: 60_000, handler: async () => {} }],
      },
      /function name 'same' is used twice/,
    ],
    [
      "a timer without a positive interval",
      { http: [], timers: [{ name: "t", schedule: "0 * * * * *", intervalMs: 0, handler: async () => {} }] },
      /timer 't': intervalMs must be a positive number/,
    ],
    [
      "an unsupported route template",
      { http: [http("f", ["GET"], "x/{a}-{b}", async () => ({}))], timers: [] },
      /unsupported segment/,
    ],
  ])("refuses %s before listening", async (_what, table: RouteTable, message) => {
    await expect(startLocalHost({ table, port: 0, logger: recordingLogger().logger })).rejects.toThrow(
      message,
    );
  });

  it("fails with PortInUseError naming a taken port", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const attempt = startLocalHost({
        table: { http: [], timers: [] },
        port,
        logger: recordingLogger().logger,
      });
      await expect(attempt).rejects.toThrow(PortInUseError);
      await expect(attempt).rejects.toThrow(`127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });
});

describe("local functions host timers", () => {
  function timerDef(name: string, intervalMs: number, handler: (timer: Timer) => Promise<void>): TimerDef {
    return { name, schedule: "*/15 * * * * *", intervalMs, handler: (timer) => handler(timer) };
  }

  it("runs each timer repeatedly, never overlapping itself, flags overruns as past due, and logs failures", async () => {
    const { logger, entries } = recordingLogger();
    let active = 0;
    let maxActive = 0;
    const runs: Timer[] = [];
    let failures = 0;
    const table: RouteTable = {
      http: [],
      timers: [
        // Each run takes longer than the interval, so a naive interval would overlap.
        timerDef("sweeper", 20, async (timer) => {
          active++;
          maxActive = Math.max(maxActive, active);
          await new Promise((resolve) => setTimeout(resolve, 50));
          active--;
          runs.push(timer);
          logger.log("debug", "sweeper done");
        }),
        timerDef("flaky", 20, async () => {
          failures++;
          throw new Error(`flaky failure ${failures}`);
        }),
      ],
    };
    const host = await startLocalHost({ table, port: 0, logger });
    try {
      await entries.waitFor(
        (all) => all.filter((e) => e.message === "sweeper done").length >= 3,
        "3 sweeper runs",
      );
      await entries.waitFor(
        (all) =>
          all.filter((e) => e.message === "timer run failed" && e.fields.function === "flaky").length >= 2,
        "2 logged flaky failures",
      );
    } finally {
      await host.close();
    }
    expect(maxActive).toBe(1);
    expect(runs[0]?.isPastDue).toBe(false);
    expect(runs.slice(1).every((t) => t.isPastDue)).toBe(true);
    expect(runs[0]?.scheduleStatus).toEqual({
      last: expect.any(String),
      next: expect.any(String),
      lastUpdated: expect.any(String),
    });
    const failure = entries.items.find((e) => e.message === "timer run failed");
    expect(String(failure?.fields.error)).toContain("flaky failure 1");
  });

  it("close() waits for a timer run in progress", async () => {
    const started = deferred();
    const release = deferred();
    let finished = false;
    const table: RouteTable = {
      http: [],
      timers: [
        timerDef("blocking", 1, async () => {
          started.resolve();
          await release.promise;
          finished = true;
        }),
      ],
    };
    const host = await startLocalHost({ table, port: 0, logger: recordingLogger().logger });
    await withDeadline(started.promise, 10_000, "the timer to start");
    let closedWhileRunning = false;
    const closing = host.close().then(() => (closedWhileRunning = !finished));
    await new Promise((resolve) => setImmediate(resolve));
    release.resolve();
    await withDeadline(closing, 10_000, "close()");
    expect(finished).toBe(true);
    expect(closedWhileRunning).toBe(false);
  });
});
