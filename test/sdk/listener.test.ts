/** DeviceStreamListener against a fake method host and an in-memory relay: answers, caps, idempotency. */
import { createMemoryRelay, TunnelSession, type MemoryRelayEndpoint } from "../../client/tunnel";
import {
  DeviceStreamListener,
  type DeviceStreamListenerOptions,
  type MethodHost,
  type RelayConnector,
} from "../../client/sdk/device";
import { deferred, withDeadline } from "../helpers/events";

type Handler = Parameters<NonNullable<MethodHost["onDeviceMethod"]>>[1];

class FakeHost implements MethodHost {
  readonly handlers = new Map<string, Handler>();
  onDeviceMethod(name: string, cb: Handler): void {
    if (this.handlers.has(name)) throw new Error("already registered");
    this.handlers.set(name, cb);
  }
  call(payload: unknown, name = "deviceStream"): Promise<{ status: number; payload: any }> {
    return new Promise((resolve) =>
      this.handlers.get(name)!(
        { methodName: name, payload },
        {
          send: (status, body, done) => {
            resolve({ status, payload: body });
            done();
          },
        },
      ),
    );
  }
}

const TOKEN = "secret-relay-token";
const RELAY = { endpoint: "https://relay.example.com", hub: "streams" };
const offer = (streamId: string, extra: Record<string, unknown> = {}) => ({
  v: 1,
  streamId,
  name: "ssh",
  data: { x: 1 },
  relay: { url: "wss://relay.example.com/client/hubs/streams", token: TOKEN },
  expiresAt: new Date(Date.now() + 60_000).toISOString(),
  ...extra,
});

/** A connector that hands the device the b side of a memory relay, recording each call. */
function memoryConnector() {
  const calls: string[] = [];
  const services: MemoryRelayEndpoint[] = [];
  const connector: RelayConnector = async (options) => {
    calls.push(options.group);
    const { a, b } = createMemoryRelay();
    services.push(a);
    return Object.assign(b, { reportBytesWith: () => undefined });
  };
  return { calls, services, connector };
}

function listen(host: FakeHost, options: Partial<DeviceStreamListenerOptions> = {}) {
  const mem = memoryConnector();
  const listener = new DeviceStreamListener(host, {
    onRequest: () => ({ accept: true, data: { ok: 1 } }),
    relay: RELAY,
    connectRelay: mem.connector,
    ...options,
  });
  return { listener, ...mem };
}

describe("DeviceStreamListener", () => {
  afterEach(() => jest.restoreAllMocks());

  it.each([
    [null, /JSON object/],
    [{ ...offer("s"), v: 2 }, /version/],
    [{ ...offer("s"), streamId: "" }, /streamId/],
    [{ ...offer("s"), relay: { url: "wss://x" } }, /relay\.url or relay\.token/],
    [{ ...offer("s"), expiresAt: "soon" }, /expiresAt/],
  ])("answers 400 with the field for payload %#", async (payload, reason) => {
    const host = new FakeHost();
    const { calls } = listen(host);
    const answer = await host.call(payload);
    expect(answer.status).toBe(400);
    expect(answer.payload.reason).toMatch(reason);
    expect(JSON.stringify(answer)).not.toContain(TOKEN);
    expect(calls).toEqual([]);
  });

  it("accepts with the application's data and joins the relay before answering", async () => {
    const host = new FakeHost();
    const { listener, calls } = listen(host);
    const streams: string[] = [];
    listener.on("stream", (s) => streams.push(s.streamId));
    expect(await host.call(offer("s1"))).toEqual({
      status: 200,
      payload: { accepted: true, data: { ok: 1 } },
    });
    expect(calls).toEqual(["stream.s1"]);
    expect(streams).toEqual(["s1"]);
    await listener.close();
  });

  it.each([
    ["another hub", "wss://relay.example.com/client/hubs/attacker", /another hub/],
    ["another hub, query form", "wss://relay.example.com/client/?hub=attacker", /another hub/],
    ["another host", "wss://attacker.webpubsub.azure.com/client/hubs/streams", /not this device's relay/],
    ["another port", "wss://relay.example.com:8443/client/hubs/streams", /not this device's relay/],
    ["plain ws", "ws://relay.example.com/client/hubs/streams", /not encrypted/],
  ])(
    "refuses an offer naming %s before asking the application, and joins no relay",
    async (_, url, reason) => {
      const host = new FakeHost();
      const asked: string[] = [];
      const { listener, calls } = listen(host, {
        onRequest: ({ name }) => {
          asked.push(name);
          return { accept: true };
        },
      });
      const refused: string[] = [];
      listener.on("refused", (r) => refused.push(r.reason));
      const answer = await host.call(offer("forged", { relay: { url, token: TOKEN } }));
      expect(answer).toEqual({ status: 403, payload: { reason: expect.stringMatching(reason) } });
      expect(refused).toEqual([answer.payload.reason]);
      expect(JSON.stringify(answer)).not.toContain(TOKEN);
      expect(asked).toEqual([]);
      expect(calls).toEqual([]);
    },
  );

  it.each([["/client/hubs/STREAMS"], ["/client/?hub=Streams"]])(
    "joins this deployment's hub in either URL form (%s), whatever the case",
    async (path) => {
      const host = new FakeHost();
      const { listener, calls } = listen(host);
      const answer = await host.call(
        offer("forms", { relay: { url: `wss://relay.example.com${path}`, token: TOKEN } }),
      );
      expect(answer.status).toBe(200);
      expect(calls).toEqual(["stream.forms"]);
      await listener.close();
    },
  );

  it.each([[2], ["1"], [undefined], [1.5]])(
    "refuses offer version %p with its code and the versions it speaks, joining no relay",
    async (v) => {
      const host = new FakeHost();
      const { calls } = listen(host);
      const answer = await host.call({ ...offer("ver"), v });
      expect(answer).toEqual({
        status: 400,
        payload: {
          reason: expect.stringMatching(/unsupported offer version; this device speaks v 1/),
          code: "UnsupportedOfferVersion",
          versions: [1],
        },
      });
      expect(calls).toEqual([]);
    },
  );

  it("takes the offer exactly as control planes sent it before offers were versioned (v1 fixture)", async () => {
    const host = new FakeHost();
    const { listener, calls } = listen(host);
    // Byte for byte the payload of shared/streams/service.ts at 0afc757 (field order included).
    const v1 = JSON.parse(
      `{"v":1,"streamId":"Abc_123","name":"ssh","data":null,"relay":{"url":"wss://relay.example.com/client/hubs/streams","token":"${TOKEN}"},"expiresAt":"${new Date(Date.now() + 60_000).toISOString()}"}`,
    );
    expect(await host.call(v1)).toEqual({ status: 200, payload: { accepted: true, data: { ok: 1 } } });
    expect(calls).toEqual(["stream.Abc_123"]);
    await listener.close();
  });

  it("a new offer for a stream id it already answered joins the relay again (a reused Repeatability-Request-ID)", async () => {
    const host = new FakeHost();
    const { listener, calls } = listen(host);
    const first = offer("reused");
    expect((await host.call(first)).status).toBe(200);
    await listener.streams.get("reused")!.close();
    // The control plane purged the first record and made the same id anew: new credentials.
    const second = offer("reused", { relay: { url: first.relay.url, token: "a-new-token" } });
    expect((await host.call(second)).status).toBe(200);
    expect(calls).toEqual(["stream.reused", "stream.reused"]);
    expect(listener.streams.has("reused")).toBe(true);
    await listener.close();
  });

  it("forgets an offer at its handshake deadline: a late repeat is decided again, not answered from memory", async () => {
    const host = new FakeHost();
    const joins: string[] = [];
    const { listener } = listen(host, {
      connectRelay: async (options) => {
        joins.push(options.token);
        // The relay refuses a credential it has seen: single use.
        if (joins.filter((t) => t === options.token).length > 1) {
          throw Object.assign(new Error("relay refused the connection (HTTP 401)"), { code: "RelayRefused" });
        }
        const { b } = createMemoryRelay();
        return Object.assign(b, { reportBytesWith: () => undefined });
      },
    });
    const late = offer("late", { expiresAt: new Date(Date.now() - 1000).toISOString() });
    expect((await host.call(late)).status).toBe(200);
    const again = await host.call(late);
    expect(again).toEqual({
      status: 502,
      payload: { reason: expect.stringMatching(/cannot join the relay/) },
    });
    expect(joins).toEqual([TOKEN, TOKEN]);
    await listener.close();
  });

  it("is idempotent per offer: a repeated request never opens a second relay", async () => {
    const host = new FakeHost();
    const gate = deferred();
    const { listener, calls } = listen(host, {
      onRequest: async () => {
        await gate.promise;
        return { accept: true };
      },
    });
    // The very same offer, delivered three times (IoT Hub or the control plane retried it).
    const dup = offer("dup");
    const first = host.call(dup);
    const second = host.call(dup);
    gate.resolve();
    const answers = await Promise.all([first, second, host.call(dup)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(calls).toEqual(["stream.dup"]);
    expect(listener.streams.size).toBe(1);
    await listener.close();
  });

  it("refuses beyond maxStreams, after close, and on the application's reason", async () => {
    const host = new FakeHost();
    const { listener } = listen(host, {
      maxStreams: 1,
      onRequest: ({ name }) => (name === "ssh" ? { accept: true } : { accept: false, reason: `no ${name}` }),
    });
    expect(await host.call(offer("c", { name: "rdp" }))).toEqual({
      status: 403,
      payload: { reason: "no rdp" },
    });
    expect((await host.call(offer("a"))).status).toBe(200);
    expect(await host.call(offer("b"))).toEqual({
      status: 429,
      payload: { reason: expect.stringMatching(/limit/) },
    });
    // A device clock far ahead must not refuse offers: the relay enforces the expiry.
    const skewed = new FakeHost();
    const other = listen(skewed);
    expect((await skewed.call(offer("d", { expiresAt: new Date(0).toISOString() }))).status).toBe(200);
    await other.listener.close();
    await listener.close();
    expect(listener.streams.size).toBe(0);
    expect(await host.call(offer("e"))).toEqual({
      status: 503,
      payload: { reason: expect.stringMatching(/shutting down/) },
    });
  });

  it("holds maxStreams under parallel requests: streams still joining the relay count", async () => {
    const host = new FakeHost();
    const joins = deferred();
    const mem = memoryConnector();
    let started = 0;
    const listener = new DeviceStreamListener(host, {
      maxStreams: 3,
      onRequest: () => ({ accept: true }),
      relay: RELAY,
      // Every join waits until all eight requests are in, so none has finished joining yet.
      connectRelay: async (options) => {
        if (++started === 3) joins.resolve();
        await joins.promise;
        return mem.connector(options);
      },
    });
    const answers = await withDeadline(
      Promise.all(Array.from({ length: 8 }, (_, i) => host.call(offer(`p${i}`)))),
      15_000,
      "eight parallel answers",
    );
    expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused).toHaveLength(5);
    for (const a of refused)
      expect(a).toEqual({ status: 429, payload: { reason: expect.stringMatching(/limit/) } });
    expect(mem.calls).toHaveLength(3);
    expect(listener.streams.size).toBe(3);
    await listener.close();
  });

  it("close waits for a request still joining its relay, which closes that relay and answers 503", async () => {
    const host = new FakeHost();
    const joining = deferred();
    const joined = deferred();
    const relayClosing = deferred();
    const relayClosed = deferred();
    const events: string[] = [];
    const connector: RelayConnector = async () => {
      joining.resolve();
      await joined.promise;
      const { b } = createMemoryRelay();
      return Object.assign(b, {
        reportBytesWith: () => undefined,
        close: (reason: string) => {
          events.push(`relay closed: ${reason}`);
          relayClosing.resolve();
        },
        whenClosed: () => relayClosed.promise.then(() => void events.push("relay socket gone")),
      });
    };
    const { listener } = listen(host, { connectRelay: connector });
    const answer = host.call(offer("joining"));
    await withDeadline(joining.promise, 5_000, "the request to join its relay");
    const closing = listener.close().then(() => void events.push("listener closed"));
    joined.resolve();
    await withDeadline(relayClosing.promise, 5_000, "the joined relay to be closed");
    expect(events).toEqual(["relay closed: refused"]); // close() still waits for its socket
    relayClosed.resolve();
    expect(await answer).toEqual({
      status: 503,
      payload: { reason: expect.stringMatching(/shutting down/) },
    });
    await closing;
    expect(events).toEqual(["relay closed: refused", "relay socket gone", "listener closed"]);
    expect(listener.streams.size).toBe(0);
  });

  it("a throwing callback answers 500 without its text; the detail stays local", async () => {
    const host = new FakeHost();
    const { listener } = listen(host, {
      onRequest: () => {
        throw new Error("/etc/secret-path missing");
      },
    });
    const refused: unknown[] = [];
    listener.on("refused", (info) => refused.push(info));
    const answer = await host.call(offer("boom"));
    expect(answer).toEqual({ status: 500, payload: { reason: "the device failed to handle the request" } });
    expect(refused).toEqual([
      {
        streamId: "boom",
        status: 500,
        reason: answer.payload.reason,
        detail: "Error: /etc/secret-path missing",
      },
    ]);
  });

  it("caps channels per stream with ChannelLimit", async () => {
    const host = new FakeHost();
    const { listener, services } = listen(host, { maxChannelsPerStream: 2 });
    listener.on("stream", (s) => s.on("channel", (c) => c.resume()));
    await host.call(offer("cap"));
    const service = new TunnelSession({ role: "service", transport: services[0]! });
    service.start();
    await withDeadline(service.waitReady(), 10_000, "handshake");
    await service.openChannel();
    await service.openChannel();
    // The service sees the cap in the HELLO: a third channel waits for a slot, and its wait runs out.
    await expect(service.openChannel("", 50)).rejects.toMatchObject({ code: "ChannelLimit" });
    service.close();
    await listener.close();
  });

  it("works on a ModuleClient (onMethod), and needs one of the two", async () => {
    const handlers: string[] = [];
    new DeviceStreamListener(
      { onMethod: (name) => handlers.push(name) },
      { onRequest: () => ({ accept: true }), relay: RELAY, methodName: "custom" },
    );
    expect(handlers).toEqual(["custom"]);
    expect(() => new DeviceStreamListener({}, { onRequest: () => ({ accept: true }), relay: RELAY })).toThrow(
      /Client or ModuleClient/,
    );
  });

  it.each([
    [{ endpoint: "", hub: "streams" }, /relay.endpoint must name/],
    [{ endpoint: "https://relay.example.com", hub: "" }, /relay.hub must name/],
    [{ endpoint: "http://127.0.0.1:8080", hub: "streams" }, /insecure/],
    [{ endpoint: "https://*.webpubsub.azure.com", hub: "streams" }, /one host, not a pattern/],
  ])("refuses to start without this deployment's exact relay %#", (relay, message) => {
    expect(
      () => new DeviceStreamListener(new FakeHost(), { onRequest: () => ({ accept: true }), relay }),
    ).toThrow(message);
  });
});
