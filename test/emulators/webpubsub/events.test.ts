import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import WebSocket from "ws";
import type { WebPubSubEmulator, EventFault } from "../../../emulators/webpubsub";
import { toFaultInjector } from "../../../emulators/webpubsub/faults";
import {
  rawClient,
  serviceClient,
  startEmulator,
  startEventHandler,
  upgradeStatus,
  type EventReply,
  type ReceivedEvent,
} from "./helpers";

type Handler = Awaited<ReturnType<typeof startEventHandler>>;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(
  reply?: (e: ReceivedEvent) => EventReply | Promise<EventReply>,
  opts: { faults?: (e: { type: string }) => EventFault; allowedOrigin?: string } = {},
): Promise<{ emulator: WebPubSubEmulator; handler: Handler }> {
  const handler = await startEventHandler(reply, { allowedOrigin: opts.allowedOrigin });
  cleanups.push(() => handler.close());
  const emulator = await startEmulator({
    eventHandlers: { chat: `${handler.url}?e={event}` },
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  cleanups.push(() => emulator.close());
  return { emulator, handler };
}

const type = (e: ReceivedEvent): string => String(e.headers["ce-type"]);
const json = (e: ReceivedEvent): unknown => JSON.parse(e.body.toString());

async function jsonClient(emulator: WebPubSubEmulator, userId: string, query = "") {
  const { url } = await serviceClient(emulator, "chat").getClientAccessToken({
    userId,
    roles: ["webpubsub.joinLeaveGroup"],
  });
  const client = await rawClient(url + query, ["json.webpubsub.azure.v1", "custom.v1"], { "x-test": "1" });
  const connected = JSON.parse((await client.frames.wait()).data.toString());
  return { ...client, id: connected.connectionId as string };
}

describe("event handlers", () => {
  it("validates the handler, then sends signed CloudEvents for connect, connected, user events and disconnected", async () => {
    const { emulator, handler } = await setup((e) =>
      type(e) === "azure.webpubsub.user.echo"
        ? { status: 200, body: `echo:${e.body.toString()}`, contentType: "text/plain" }
        : { status: 204 },
    );
    const client = await jsonClient(emulator, "alice", "&tenant=t1");
    expect((await handler.options.wait())["webhook-request-origin"]).toBe("127.0.0.1");

    const connect = await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.connect");
    expect(connect.url).toBe("/api/relay/events?e=connect");
    expect(connect.signatureValid).toBe(true);
    expect(connect.headers).toMatchObject({
      "ce-specversion": "1.0",
      "ce-awpsversion": "1.0",
      "ce-source": `/hubs/chat/client/${client.id}`,
      "ce-userid": "alice",
      "ce-connectionid": client.id,
      "ce-hub": "chat",
      "ce-eventname": "connect",
      "ce-subprotocol": "json.webpubsub.azure.v1",
      "webhook-request-origin": "127.0.0.1",
    });
    expect(connect.headers["ce-id"]).toEqual(expect.any(String));
    expect(Number.isNaN(Date.parse(String(connect.headers["ce-time"])))).toBe(false);
    const body = json(connect) as Record<string, Record<string, string[]>>;
    expect(body.claims).toMatchObject({ sub: ["alice"], role: ["webpubsub.joinLeaveGroup"] });
    expect(body.query).toEqual({ tenant: ["t1"] });
    expect(body.headers).toMatchObject({ "x-test": ["1"] });
    expect(body.headers!.authorization).toBeUndefined();
    expect(body.subprotocols).toEqual(["json.webpubsub.azure.v1", "custom.v1"]);

    const connected = await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.connected");
    expect(json(connected)).toEqual({});

    client.ws.send(JSON.stringify({ type: "event", event: "echo", dataType: "text", data: "hi", ackId: 5 }));
    const echo = await handler.events.wait((e) => type(e) === "azure.webpubsub.user.echo");
    expect(echo.headers["content-type"]).toMatch(/^text\/plain/);
    expect(echo.body.toString()).toBe("hi");
    await client.frames.wait((f) => f.data.toString().includes('"ack"'));
    const frames = client.frames.items.map((f) => JSON.parse(f.data.toString()));
    expect(frames.slice(1)).toEqual([
      { type: "message", from: "server", dataType: "text", data: "echo:hi" },
      { type: "ack", ackId: 5, success: true },
    ]);

    client.ws.close();
    const disconnected = await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.disconnected");
    expect(disconnected.signatureValid).toBe(true);
    expect(json(disconnected)).toEqual({ reason: expect.any(String) });
    // One validation per handler, not per event (the official emulator's AbuseProtector.cs).
    expect(handler.options.items.length).toBe(1);
  });

  it("turns a 4xx from connect into the upgrade response and sends nothing else", async () => {
    const { emulator, handler } = await setup((e) =>
      type(e) === "azure.webpubsub.sys.connect" ? { status: 403, body: "nope" } : { status: 204 },
    );
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken({ userId: "mallory" });
    expect(await upgradeStatus(url)).toBe(403);
    await emulator.close();
    expect(handler.events.items.map(type)).toEqual(["azure.webpubsub.sys.connect"]);
  });

  it("applies userId, groups, roles and subprotocol from a 200 connect response", async () => {
    const { emulator } = await setup((e) =>
      type(e) === "azure.webpubsub.sys.connect"
        ? {
            status: 200,
            body: {
              userId: "assigned",
              groups: ["g"],
              roles: ["webpubsub.sendToGroup.g"],
              subprotocol: "json.reliable.webpubsub.azure.v1",
            },
          }
        : { status: 204 },
    );
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken({ userId: "asked" });
    const client = await rawClient(url, ["json.webpubsub.azure.v1", "json.reliable.webpubsub.azure.v1"]);
    expect(client.ws.protocol).toBe("json.reliable.webpubsub.azure.v1");
    const connected = JSON.parse((await client.frames.wait()).data.toString());
    expect(connected).toMatchObject({ userId: "assigned", reconnectionToken: expect.any(String) });
    client.ws.send(
      JSON.stringify({ type: "sendToGroup", group: "g", dataType: "text", data: "x", ackId: 1 }),
    );
    const echoed = JSON.parse(
      (await client.frames.wait((f) => f.data.toString().includes('"message"'))).data.toString(),
    );
    expect(echoed).toEqual({
      type: "message",
      from: "group",
      group: "g",
      fromUserId: "assigned",
      dataType: "text",
      data: "x",
      sequenceId: 1,
    });
    client.ws.close();
  });

  it("refuses connections when the handler fails the abuse-protection handshake", async () => {
    const { emulator, handler } = await setup(undefined, { allowedOrigin: "someone-else.example" });
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken();
    expect(await upgradeStatus(url)).toBe(500);
    expect(handler.events.items).toEqual([]);
  });

  it("eventsSettled() resolves only once the handler has answered every event sent", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { emulator, handler } = await setup(async (e) => {
      if (type(e) === "azure.webpubsub.sys.disconnected") await gate;
      return { status: 204 };
    });
    const clients = await Promise.all(["a", "b", "c"].map((u) => jsonClient(emulator, u)));
    for (const c of clients) c.ws.close();
    for (let i = 0; i < 3; i++) {
      await handler.events.wait(
        (e) =>
          type(e) === "azure.webpubsub.sys.disconnected" && e.headers["ce-userid"] === ["a", "b", "c"][i],
      );
    }
    let settled = false;
    const settling = emulator.eventsSettled().then(() => (settled = true));
    // All three are at the handler and unanswered: nothing can have settled yet (one macrotask
    // turn lets any already-resolved chain run).
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    release();
    await settling;
    expect(settled).toBe(true);
  });

  it("retries an event answered 5xx after 1 and 3 s, replaying the same ce-id and ce-time", async () => {
    let failures = 2;
    const { emulator, handler } = await setup((e) => ({
      status: type(e) === "azure.webpubsub.sys.connected" && failures-- > 0 ? 503 : 204,
    }));
    const client = await jsonClient(emulator, "u");
    await emulator.eventsSettled();
    const attempts = handler.events.items.filter((e) => type(e) === "azure.webpubsub.sys.connected");
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((e) => e.headers["ce-id"])).size).toBe(1);
    expect(new Set(attempts.map((e) => e.headers["ce-time"])).size).toBe(1);
    // The waits are the service's (at least 1 s, then 3 s); no upper bound, the machine may be slow.
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(950);
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(2950);
    client.ws.close();
  }, 60_000);

  it("retries connect on 503 and lets the client in once the handler accepts", async () => {
    let failures = 2;
    const { emulator, handler } = await setup((e) => ({
      status: type(e) === "azure.webpubsub.sys.connect" && failures-- > 0 ? 503 : 204,
    }));
    const client = await jsonClient(emulator, "u");
    const connects = handler.events.items.filter((e) => type(e) === "azure.webpubsub.sys.connect");
    expect(connects).toHaveLength(3);
    expect(new Set(connects.map((e) => e.headers["ce-connectionid"]))).toEqual(new Set([client.id]));
    client.ws.close();
  }, 60_000);

  it("sends a simple client's frames as `message` events and its reply back as a raw frame", async () => {
    const { emulator, handler } = await setup((e) =>
      type(e) === "azure.webpubsub.user.message"
        ? { status: 200, body: Buffer.from([9, 9]), contentType: "application/octet-stream" }
        : { status: 204 },
    );
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken();
    const client = await rawClient(url);
    expect(client.ws.protocol).toBe("");
    client.ws.send(Buffer.from([1, 2]));
    const reply = await client.frames.wait();
    expect(reply).toEqual({ data: Buffer.from([9, 9]), binary: true });
    const event = await handler.events.wait((e) => type(e) === "azure.webpubsub.user.message");
    expect(event.headers["content-type"]).toBe("application/octet-stream");
    expect(event.body).toEqual(Buffer.from([1, 2]));
    client.ws.close();
  });
});

describe("event handler failures", () => {
  it("answers 500 when the connect handler is unreachable", async () => {
    const handler = await startEventHandler();
    const url = handler.url;
    await handler.close();
    // Network errors are retried, validation included: short waits keep this test quick.
    const emulator = await startEmulator({ eventHandlers: { chat: url }, retryDelaysMs: [10, 10, 10] });
    cleanups.push(() => emulator.close());
    const { url: clientUrl } = await serviceClient(emulator, "chat").getClientAccessToken();
    expect(await upgradeStatus(clientUrl)).toBe(500);
  });

  it("closes a connection whose user event the handler fails", async () => {
    const { emulator, handler } = await setup((e) => ({
      status: type(e) === "azure.webpubsub.user.boom" ? 500 : 204,
    }));
    const client = await jsonClient(emulator, "u");
    client.ws.send(JSON.stringify({ type: "event", event: "boom", dataType: "text", data: "x", ackId: 1 }));
    expect(await client.closed).toEqual({ code: 1000, reason: expect.any(String) });
    const disconnected = await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.disconnected");
    expect(json(disconnected)).toEqual({ reason: "Event handler failed to process the event." });
  });

  it("still reports disconnected when the client leaves while its connect is being decided", async () => {
    let leave: () => void = () => undefined;
    const left = new Promise<void>((resolve) => (leave = resolve));
    const { emulator, handler } = await setup(async (e) => {
      if (type(e) === "azure.webpubsub.sys.connect") {
        leave();
        // Accept only once the client has gone.
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { status: 204 };
    });
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken();
    const ws = new WebSocket(url, ["json.webpubsub.azure.v1"]);
    ws.on("error", () => undefined);
    await left;
    ws.terminate();
    const connect = await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.connect");
    const disconnected = await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.disconnected");
    expect(disconnected.headers["ce-connectionid"]).toBe(connect.headers["ce-connectionid"]);
  });

  it("closes a reliable client whose unacknowledged buffer overflows as SlowClient", async () => {
    const emulator = await startEmulator({ reliableBuffer: { maxMessages: 3 } });
    cleanups.push(() => emulator.close());
    const svc = serviceClient(emulator, "chat");
    const { url } = await svc.getClientAccessToken();
    const client = await rawClient(url, ["json.reliable.webpubsub.azure.v1"]);
    const { connectionId } = JSON.parse((await client.frames.wait()).data.toString());
    const gone = new Promise((resolve) => emulator.lifecycle.on("disconnected", resolve));
    for (let i = 0; i < 4; i++) await svc.sendToConnection(connectionId, { i });
    await expect(gone).resolves.toMatchObject({ connectionId, reason: "SlowClient" });
    expect((await client.closed).code).toBe(1008);
  });
});

describe("Azure's event-handler behaviour (the official emulator's code)", () => {
  async function quick(
    reply: (e: ReceivedEvent) => EventReply,
    handlers: (url: string) => Record<string, string | { urlTemplate: string; userEventPattern: string }> = (
      url,
    ) => ({ chat: url }),
  ) {
    const handler = await startEventHandler(reply);
    cleanups.push(() => handler.close());
    const emulator = await startEmulator({
      eventHandlers: handlers(handler.url),
      retryDelaysMs: [10, 10, 10],
    });
    cleanups.push(() => emulator.close());
    return { emulator, handler };
  }

  it.each([
    [503, 4, 503],
    [408, 4, 408],
    [500, 4, 500],
    [429, 1, 429],
    [400, 1, 400],
  ])("connect answered %i: %i attempt(s), and the client gets %i", async (status, attempts, seen) => {
    const { emulator, handler } = await quick((e) => ({
      status: type(e) === "azure.webpubsub.sys.connect" ? status : 204,
    }));
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken({ userId: "u" });
    expect(await upgradeStatus(url)).toBe(seen);
    expect(handler.events.items.filter((e) => type(e) === "azure.webpubsub.sys.connect")).toHaveLength(
      attempts,
    );
  });

  it("a timeout is not retried", async () => {
    const handler = await startEventHandler(() => new Promise<EventReply>(() => undefined));
    cleanups.push(() => handler.close());
    const emulator = await startEmulator({ eventHandlers: { chat: handler.url }, eventTimeoutMs: 300 });
    cleanups.push(() => emulator.close());
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken();
    expect(await upgradeStatus(url)).toBe(500);
    expect(handler.events.items).toHaveLength(1);
  });

  it("a user event no handler takes closes the client", async () => {
    const { emulator } = await quick(
      () => ({ status: 204 }),
      (url) => ({ chat: { urlTemplate: url, userEventPattern: "report" } }),
    );
    const client = await jsonClient(emulator, "u");
    client.ws.send(JSON.stringify({ type: "event", event: "other", dataType: "text", data: "x", ackId: 1 }));
    expect(await client.closed).toEqual({ code: 1000, reason: expect.any(String) });
    expect(client.frames.items.some((f) => f.data.toString().includes('"ack"'))).toBe(false);
  });

  it("a connect response with a whitespace-only group is a 500", async () => {
    const { emulator } = await quick((e) =>
      type(e) === "azure.webpubsub.sys.connect" ? { status: 200, body: { groups: [" "] } } : { status: 204 },
    );
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken();
    expect(await upgradeStatus(url)).toBe(500);
  });

  it("refuses whitespace-only group names from clients, tokens and REST", async () => {
    const { emulator } = await quick(() => ({ status: 204 }));
    const client = await jsonClient(emulator, "u");
    client.ws.send(JSON.stringify({ type: "joinGroup", group: " \t ", ackId: 3 }));
    const ack = await client.frames.wait((f) => f.data.toString().includes('"ack"'));
    expect(JSON.parse(ack.data.toString())).toMatchObject({
      ackId: 3,
      success: false,
      error: { name: "BadRequest" },
    });
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken({ groups: ["  "] });
    expect(await upgradeStatus(url)).toBe(400);
    await expect(serviceClient(emulator, "chat").group("  ").addConnection(client.id)).rejects.toMatchObject({
      statusCode: 400,
    });
    client.ws.close();
  });
});

describe("abuse-protection validation (the official emulator's AbuseProtector.cs)", () => {
  /** A handler whose validation answers are scripted; POSTs answer 204. */
  async function scripted(validate: (method: string) => { status: number; origin?: string | string[] }) {
    const seen: string[] = [];
    let posts = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (req.method === "POST") {
          posts++;
          res.writeHead(204).end();
          return;
        }
        seen.push(`${req.method} ${req.url}`);
        const answer = validate(req.method ?? "");
        res.writeHead(
          answer.status,
          answer.origin === undefined ? {} : { "WebHook-Allowed-Origin": answer.origin },
        );
        res.end();
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}/events/{event}`, seen, posts: () => posts };
  }

  async function connectWith(
    handlerUrl: string,
    validation: { minIntervalMs?: number; maxIntervalMs?: number } = {},
  ): Promise<{ emulator: WebPubSubEmulator; status: () => Promise<number> }> {
    const emulator = await startEmulator({ eventHandlers: { chat: handlerUrl }, validation });
    cleanups.push(() => emulator.close());
    return {
      emulator,
      status: async () => upgradeStatus((await serviceClient(emulator, "chat").getClientAccessToken()).url),
    };
  }

  it.each([
    ["a 202 with our host, in another case", { status: 202, origin: "127.0.0.1".toUpperCase() }, 101],
    ["a 200 with *", { status: 200, origin: "*" }, 101],
    ["a 200 without the header", { status: 200 }, 500],
    ["a 405", { status: 405, origin: "*" }, 500],
    ["two origins in one header value", { status: 200, origin: "other.example, 127.0.0.1" }, 500],
    ["two header lines, one ours", { status: 200, origin: ["other.example", "127.0.0.1"] }, 101],
  ])("%s: %s", async (_name, answer, expected) => {
    const handler = await scripted(() => answer);
    const { status } = await connectWith(handler.url);
    expect(await status()).toBe(expected);
    expect(handler.seen).toEqual(["OPTIONS /events/validate"]);
  });

  it("falls back from OPTIONS to GET on a 404", async () => {
    const handler = await scripted((method) =>
      method === "OPTIONS" ? { status: 404 } : { status: 200, origin: "*" },
    );
    const { status } = await connectWith(handler.url);
    expect(await status()).toBe(101);
    expect(handler.seen).toEqual(["OPTIONS /events/validate", "GET /events/validate"]);
  });

  it("keeps the last result while it refreshes: a failure is retried after 1 s, doubling; a success holds", async () => {
    let allow = false;
    const handler = await scripted(() => (allow ? { status: 200, origin: "*" } : { status: 403 }));
    const { status } = await connectWith(handler.url, { minIntervalMs: 100, maxIntervalMs: 400 });
    expect(await status()).toBe(500);
    expect(handler.seen).toHaveLength(1);
    // Within the interval the failure is remembered: no new validation, no POST.
    expect(await status()).toBe(500);
    expect(handler.seen).toHaveLength(1);
    allow = true;
    // Once the interval has passed, the next event starts a refresh but still gets the last result.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await status()).toBe(500);
    expect(handler.seen).toHaveLength(2);
    // The refresh is done by the time the next client comes; the success is kept for maxIntervalMs.
    let tries = 0;
    while ((await status()) !== 101) expect(++tries).toBeLessThan(50);
    expect(await status()).toBe(101);
    expect(handler.seen).toHaveLength(2);
  });
});

describe("fault injection: the handler answers 5xx n times", () => {
  it.each([
    [true, 3],
    [false, 1],
  ])(
    "reachesHandler %s: the handler sees %i connect attempt(s), the client gets in",
    async (reaches, seen) => {
      const handler = await startEventHandler(() => ({ status: 204 }));
      cleanups.push(() => handler.close());
      const emulator = await startEmulator({
        eventHandlers: { chat: handler.url },
        retryDelaysMs: [10, 10, 10],
        faults: (e) =>
          e.type === "connect"
            ? { action: "serverError", times: 2, reachesHandler: reaches }
            : { action: "deliver" },
      });
      cleanups.push(() => emulator.close());
      const client = await jsonClient(emulator, "u");
      expect(handler.events.items.filter((e) => type(e) === "azure.webpubsub.sys.connect")).toHaveLength(
        seen,
      );
      client.ws.close();
    },
  );

  it("more failures than retries: the 503 reaches the client", async () => {
    const handler = await startEventHandler(() => ({ status: 204 }));
    const handlerUrl = handler.url;
    cleanups.push(() => handler.close());
    const emulator = await startEmulator({
      eventHandlers: { chat: handlerUrl },
      retryDelaysMs: [10, 10, 10],
      faults: () => ({ action: "serverError", times: 4 }),
    });
    cleanups.push(() => emulator.close());
    const { url } = await serviceClient(emulator, "chat").getClientAccessToken();
    expect(await upgradeStatus(url)).toBe(503);
  });

  it("a seeded schedule can fail blocking events too, and keeps older schedules otherwise", () => {
    const info = (type: "connect" | "connected") =>
      ({ hub: "h", type, event: type, connectionId: "c", userId: undefined, sequence: 1 }) as const;
    const seeded = toFaultInjector({ seed: 3, serverError: 1 });
    expect(seeded(info("connect"))).toEqual({ action: "serverError", times: 2 });
    expect(seeded(info("connected"))).toEqual({ action: "serverError", times: 2 });
    const plain = toFaultInjector({ seed: 3, drop: 0.5 });
    expect(plain(info("connect"))).toEqual({ action: "deliver" });
  });
});

describe("fault injection on non-blocking events", () => {
  async function lifecycle(faults: (e: { type: string }) => EventFault): Promise<ReceivedEvent[]> {
    const { emulator, handler } = await setup(() => ({ status: 204 }), { faults });
    const client = await jsonClient(emulator, "u");
    client.ws.close();
    await client.closed;
    // close() flushes held and delayed events and waits for every request in flight.
    await emulator.close();
    return handler.events.items.filter((e) => type(e) !== "azure.webpubsub.sys.connect");
  }
  const names = (events: ReceivedEvent[]): string[] => events.map((e) => String(e.headers["ce-eventname"]));

  it("drops", async () => {
    expect(names(await lifecycle((e) => ({ action: e.type === "connected" ? "drop" : "deliver" })))).toEqual([
      "disconnected",
    ]);
  });

  it("duplicates with the same ce-id", async () => {
    const events = await lifecycle((e) => ({ action: e.type === "disconnected" ? "duplicate" : "deliver" }));
    expect(names(events)).toEqual(["connected", "disconnected", "disconnected"]);
    expect(events[1]!.headers["ce-id"]).toBe(events[2]!.headers["ce-id"]);
  });

  it("delays so that disconnected overtakes connected", async () => {
    const events = await lifecycle((e) =>
      e.type === "connected" ? { action: "delay", ms: 60_000 } : { action: "deliver" },
    );
    expect(names(events)).toEqual(["disconnected", "connected"]);
  });

  it("reorders: a held event follows the next one", async () => {
    const events = await lifecycle((e) => ({ action: e.type === "connected" ? "reorder" : "deliver" }));
    expect(names(events).sort()).toEqual(["connected", "disconnected"]);
    expect(names(events)[0]).toBe("disconnected");
  });

  it("delivers normally when the hook or a lifecycle listener throws", async () => {
    const { emulator, handler } = await setup(() => ({ status: 204 }), {
      faults: () => {
        throw new Error("bug in a test hook");
      },
    });
    emulator.lifecycle.on("connected", () => {
      throw new Error("bug in a listener");
    });
    const client = await jsonClient(emulator, "u");
    client.ws.close();
    await handler.events.wait((e) => type(e) === "azure.webpubsub.sys.disconnected");
    expect(names(handler.events.items)).toEqual(["connect", "connected", "disconnected"]);
  });

  it("is reproducible from a seed", () => {
    const draw = (seed: number) => {
      const inject = toFaultInjector({ seed, drop: 0.2, duplicate: 0.2, delay: 0.2, reorder: 0.2 });
      const info = {
        hub: "h",
        type: "connected" as const,
        event: "connected",
        connectionId: "c",
        userId: undefined,
        sequence: 1,
      };
      return Array.from({ length: 50 }, () => inject(info));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(new Set(draw(7).map((f) => f.action))).toEqual(
      new Set(["drop", "duplicate", "delay", "reorder", "deliver"]),
    );
  });
});
