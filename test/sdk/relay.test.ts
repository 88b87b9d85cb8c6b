import { once } from "node:events";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import {
  type RelayUrlPolicy,
  checkRelayUrl,
  connectRelay,
  relayUrlPolicyProblem,
} from "../../client/sdk/relay";
import { PROTOBUF_SUBPROTOCOL, decodeUpstream, encodeDownstream } from "../../client/webpubsub";
import { Recorder, withDeadline } from "../helpers/events";
import { proxyAgentFor } from "../../client/sdk/relay/proxy";

describe("the device's relay policy: exactly one endpoint and hub", () => {
  const azure = { endpoint: "https://mine.webpubsub.azure.com", hub: "Streams" };
  const local = { endpoint: "http://127.0.0.1:8080", hub: "streams", allowInsecure: true };
  it.each<[string, RelayUrlPolicy, boolean]>([
    ["wss://mine.webpubsub.azure.com/client/hubs/streams", azure, true],
    ["wss://MINE.webpubsub.azure.com/client/hubs/STREAMS/", azure, true],
    ["wss://mine.webpubsub.azure.com:443/client/hubs/streams", azure, true],
    ["wss://mine.webpubsub.azure.com/client/?hub=streams", azure, true],
    ["wss://mine.webpubsub.azure.com/client?hub=sTrEaMs&access_token=x", azure, true],
    ["wss://mine.webpubsub.azure.com/client/hubs/str%65ams", azure, true],
    ["ws://127.0.0.1:8080/client/hubs/streams", local, true],
    // another hub, in either URL form, or named twice or not at all
    ["wss://mine.webpubsub.azure.com/client/hubs/other", azure, false],
    ["wss://mine.webpubsub.azure.com/client/?hub=other", azure, false],
    ["wss://mine.webpubsub.azure.com/client/hubs/streams?hub=other", azure, false],
    ["wss://mine.webpubsub.azure.com/client/?hub=streams&hub=other", azure, false],
    ["wss://mine.webpubsub.azure.com/client/?HUB=streams", azure, false],
    ["wss://mine.webpubsub.azure.com/client/", azure, false],
    ["wss://mine.webpubsub.azure.com/client/hubs/streams/x", azure, false],
    ["wss://mine.webpubsub.azure.com/other/hubs/streams", azure, false],
    ["wss://mine.webpubsub.azure.com/client/hubs/streams#frag", azure, false],
    // another host, port or scheme
    ["wss://theirs.webpubsub.azure.com/client/hubs/streams", azure, false],
    ["wss://mine.webpubsub.azure.com.evil.com/client/hubs/streams", azure, false],
    ["wss://mine.webpubsub.azure.com:8443/client/hubs/streams", azure, false],
    ["ws://mine.webpubsub.azure.com/client/hubs/streams", { ...azure, allowInsecure: true }, false],
    ["ws://127.0.0.1:9090/client/hubs/streams", local, false],
    ["ws://localhost:8080/client/hubs/streams", local, false],
    ["wss://127.0.0.1:8080/client/hubs/streams", local, false],
    ["wss://u:p@mine.webpubsub.azure.com/client/hubs/streams", azure, false],
  ])("%s", (url, p, ok) => expect(checkRelayUrl(url, p).ok).toBe(ok));

  it("names what differs, never the offered hub or the token", () => {
    const hub = checkRelayUrl("wss://mine.webpubsub.azure.com/client/hubs/evil?access_token=SECRET", azure);
    expect(hub).toEqual({
      ok: false,
      reason: "the relay URL names another hub than this device's hub 'Streams'",
    });
    const host = checkRelayUrl(
      "wss://theirs.webpubsub.azure.com/client/hubs/streams?access_token=SECRET",
      azure,
    );
    expect(host).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/wss:\/\/theirs.* is not this device's relay wss:\/\/mine/),
    });
    expect(JSON.stringify([hub, host])).not.toMatch(/SECRET|evil/);
  });

  it.each([
    [{}, /relay.endpoint must name/],
    [{ endpoint: "https://x.webpubsub.azure.com" }, /relay.hub must name/],
    [{ endpoint: "https://x.webpubsub.azure.com", hub: "9bad" }, /relay.hub/],
    [{ endpoint: "https://*.webpubsub.azure.com", hub: "streams" }, /not a pattern/],
    [{ endpoint: "x.webpubsub.azure.com", hub: "streams" }, /https:\/\/ URL|valid URL/],
    [{ endpoint: "wss://x.webpubsub.azure.com", hub: "streams" }, /https:\/\//],
    [{ endpoint: "http://127.0.0.1:8080", hub: "streams" }, /insecure/],
    [{ endpoint: "https://x.webpubsub.azure.com/client/hubs/streams", hub: "streams" }, /without path/],
  ])("refuses an unusable policy %#", (policy, message) =>
    expect(relayUrlPolicyProblem(policy)).toMatch(message),
  );
});

describe("the service side's relay policy (the host the control plane named)", () => {
  const policy = { allowedHosts: ["relay.example.com", "*.webpubsub.azure.com", "127.0.0.1:8080"] };
  it.each([
    ["wss://relay.example.com/client/hubs/streams", policy, true],
    ["wss://RELAY.example.com/x", policy, true],
    ["wss://mine.webpubsub.azure.com/client", policy, true],
    ["wss://webpubsub.azure.com/client", policy, false],
    ["wss://evil.com/?h=relay.example.com", policy, false],
    ["wss://relay.example.com.evil.com/", policy, false],
    ["ws://relay.example.com/", policy, false],
    ["ws://127.0.0.1:8080/client", { ...policy, allowInsecure: true }, true],
    ["ws://127.0.0.1:9090/client", { ...policy, allowInsecure: true }, false],
    ["https://relay.example.com/", policy, false],
    ["wss://user:pw@relay.example.com/", policy, false],
    ["not a url", policy, false],
  ])("%s", (url, p, ok) => expect(checkRelayUrl(url, p).ok).toBe(ok));

  it("never repeats the query string in its reason", () => {
    const check = checkRelayUrl("wss://evil.com/client?access_token=SECRET", policy);
    expect(check).toMatchObject({ ok: false });
    expect(JSON.stringify(check)).not.toContain("SECRET");
  });

  it("uses HTTPS_PROXY unless NO_PROXY matches", () => {
    const url = new URL("wss://relay.example.com/");
    expect(proxyAgentFor(url, {})).toBeUndefined();
    expect(proxyAgentFor(url, { HTTPS_PROXY: "http://proxy:3128" })).toBeDefined();
    expect(
      proxyAgentFor(url, { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: ".example.com" }),
    ).toBeUndefined();
    expect(proxyAgentFor(url, { https_proxy: "http://proxy:3128", no_proxy: "other.com" })).toBeDefined();
  });
});

describe("relay connection against a scripted Web PubSub server", () => {
  let wss: WebSocketServer;
  let port: number;
  const seen = new Recorder<{ url: string; auth: string | undefined; protocol: string; ws: WebSocket }>();

  beforeAll(async () => {
    wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    port = (wss.address() as AddressInfo).port;
    wss.on("connection", (ws, req) => {
      seen.push({ url: req.url ?? "", auth: req.headers.authorization, protocol: ws.protocol, ws });
    });
  });
  afterAll(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });

  const policy = () => ({ allowedHosts: [`127.0.0.1:${port}`], allowInsecure: true });

  it("sends the token only as a Bearer header, frames as noEcho group sends, reports once before closing", async () => {
    const n = seen.items.length;
    const connecting = connectRelay({
      url: `ws://127.0.0.1:${port}/client/hubs/streams?access_token=LEAK`,
      token: "T0KEN",
      group: "stream.s1",
      policy: policy(),
    });
    await seen.waitFor((i) => i.length > n, "upgrade");
    const { ws, url, auth, protocol } = seen.items[n]!;
    expect(url).toBe("/client/hubs/streams");
    expect(auth).toBe("Bearer T0KEN");
    expect(protocol).toBe(PROTOBUF_SUBPROTOCOL);
    const upstream = new Recorder<ReturnType<typeof decodeUpstream>>();
    ws.on("message", (data: Buffer) => upstream.push(decodeUpstream(data)));
    ws.send(encodeDownstream({ type: "connected", connectionId: "c1", userId: "u" }));
    const relay = await connecting;
    expect(relay.connectionId).toBe("c1");

    const frames = new Recorder<Buffer>();
    relay.on("message", (f) => frames.push(Buffer.from(f)));
    ws.send(
      encodeDownstream({
        type: "message",
        from: "group",
        group: "stream.s1",
        data: { kind: "binary", bytes: Buffer.from("in") },
      }),
    );
    await frames.waitFor((f) => f.length === 1, "frame in");
    expect(frames.items[0]!.toString()).toBe("in");

    relay.send(Buffer.from("out"));
    relay.reportBytesWith(() => 3);
    // The tunnel reports just before its CLOSE frame; the close then sends no second report.
    relay.sendReport();
    relay.send(Buffer.from("CLOSE"));
    relay.close("done");
    await relay.whenClosed();
    expect(upstream.items).toHaveLength(3);
    expect(upstream.items[0]).toEqual({
      type: "sendToGroup",
      group: "stream.s1",
      noEcho: true,
      data: { kind: "binary", bytes: expect.any(Uint8Array) },
    });
    expect(Buffer.from((upstream.items[0] as any).data.bytes).toString()).toBe("out");
    expect(upstream.items[1]).toEqual({
      type: "event",
      event: "report",
      data: { kind: "json", json: '{"bytesSent":3}' },
    });
    expect(Buffer.from((upstream.items[2] as any).data.bytes).toString()).toBe("CLOSE");
  });

  it.each([
    [
      "a text group message",
      () =>
        encodeDownstream({ type: "message", from: "group", group: "g", data: { kind: "text", text: "hi" } }),
      /non-binary text/,
    ],
    ["an undecodable frame", () => Buffer.from([0xff, 0xff, 0xff]), /undecodable/],
  ])("%s closes the transport with a reason", async (_what, frame, reason) => {
    const n = seen.items.length;
    const connecting = connectRelay({
      url: `ws://127.0.0.1:${port}/c`,
      token: "t",
      group: "g",
      policy: policy(),
    });
    await seen.waitFor((i) => i.length > n, "upgrade");
    const { ws } = seen.items[n]!;
    ws.send(encodeDownstream({ type: "connected", connectionId: "c", userId: "u" }));
    const relay = await connecting;
    const closed = new Promise<string>((resolve) => relay.on("close", resolve));
    ws.send(frame());
    expect(await withDeadline(closed, 10_000, "close")).toMatch(reason);
  });

  it("maps a server-side disconnect to a close reason, and a silent server to RelayTimeout", async () => {
    const n = seen.items.length;
    const connecting = connectRelay({
      url: `ws://127.0.0.1:${port}/c`,
      token: "t",
      group: "g",
      policy: policy(),
    });
    await seen.waitFor((i) => i.length > n, "upgrade");
    const { ws } = seen.items[n]!;
    ws.send(encodeDownstream({ type: "connected", connectionId: "c", userId: "u" }));
    const relay = await connecting;
    const closed = new Promise<string>((resolve) => relay.on("close", resolve));
    ws.send(encodeDownstream({ type: "disconnected", reason: "The stream was closed." }));
    ws.close(1000);
    expect(await withDeadline(closed, 10_000, "close")).toMatch(/1000: The stream was closed\./);

    const silent = connectRelay({
      url: `ws://127.0.0.1:${port}/c`,
      token: "t",
      group: "g",
      policy: policy(),
      connectTimeoutInMs: 200,
    });
    await expect(silent).rejects.toMatchObject({ name: "RelayError", code: "RelayTimeout" });
    await expect(
      connectRelay({ url: `wss://elsewhere.example.com/c`, token: "t", group: "g", policy: policy() }),
    ).rejects.toMatchObject({ code: "RelayNotAllowed" });
  });
});
