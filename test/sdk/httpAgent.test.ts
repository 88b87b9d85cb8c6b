/**
 * HTTP to a device by ID through DeviceHttpAgent: requests reach the device's web server over
 * tunnel channels, keep-alive requests share one stream, idle streams close and reopen, failures
 * name their cause, and WebSocket upgrades pass through.
 */
import { once } from "node:events";
import http from "node:http";
import { type NetConnectOpts, type Socket, connect as netConnect } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { DeviceHttpAgent, type StreamsError } from "../../client/sdk/service";
import { deferred, onceWithin, Recorder, withDeadline } from "../helpers/events";
import { webDevice } from "./httpDevice";
import { scaled, useTarget } from "./target";

const stack = useTarget();

function get(agent: http.Agent, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "device", path, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (t: string) => (body += t));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** The error a request fails with (rejects if it succeeds). */
async function requestError(agent: http.Agent, path = "/"): Promise<StreamsError> {
  const outcome = await get(agent, path).then(
    (res) => ({ res }),
    (err: unknown) => ({ err }),
  );
  if ("res" in outcome) throw new Error(`expected a failure, got ${outcome.res.status}`);
  return outcome.err as StreamsError;
}

/** An agent for relay WebSockets that records each socket's last ref() or unref() call. */
function refRecordingRelayAgent(): { agent: http.Agent; lastCall: Map<Socket, "ref" | "unref"> } {
  const lastCall = new Map<Socket, "ref" | "unref">();
  const agent = new http.Agent();
  agent.createConnection = (options) => {
    const socket = netConnect(options as NetConnectOpts);
    lastCall.set(socket, "ref");
    const ref = socket.ref.bind(socket);
    const unref = socket.unref.bind(socket);
    socket.ref = () => (lastCall.set(socket, "ref"), ref());
    socket.unref = () => (lastCall.set(socket, "unref"), unref());
    return socket;
  };
  return { agent, lastCall };
}

describe("DeviceHttpAgent", () => {
  it("sends keep-alive requests to the device's web server over one stream", async () => {
    const s = stack();
    const device = await webDevice(s, "Http-Dev", (req, res) => res.end(`device says ${req.url}`));
    const agent = new DeviceHttpAgent(s.client(), { deviceId: device.deviceId, streamName: "web" });
    try {
      for (const path of ["/a", "/b", "/c"]) {
        expect(await get(agent, path)).toEqual({ status: 200, body: `device says ${path}` });
      }
      expect(agent.pool.openStreams).toHaveLength(1);
      expect(device.connections.items).toHaveLength(1);
    } finally {
      await agent.close();
      await device.close();
    }
  });

  it("an idle keep-alive connection does not hold the process open; a request in flight does", async () => {
    const s = stack();
    const release = deferred();
    const device = await webDevice(s, "Http-Ref", (req, res) => {
      if (req.url === "/slow") void release.promise.then(() => res.end("late"));
      else res.end("ok");
    });
    const { agent: relayAgent, lastCall } = refRecordingRelayAgent();
    const agent = new DeviceHttpAgent(s.client({ relayAgent }), {
      deviceId: device.deviceId,
      streamName: "web",
    });
    const freed = new Recorder<Socket>();
    agent.on("free", freed.push);
    try {
      expect(await get(agent, "/")).toEqual({ status: 200, body: "ok" });
      await freed.waitFor((f) => f.length === 1, "the connection back in the pool");
      const [relaySocket] = [...lastCall.keys()];
      expect(lastCall.size).toBe(1);
      // Node's agent unrefs the free connection; with no other channel the relay socket follows.
      expect(lastCall.get(relaySocket!)).toBe("unref");
      const slow = get(agent, "/slow");
      await device.connections.waitFor(() => lastCall.get(relaySocket!) === "ref", "the relay socket ref'd");
      release.resolve();
      expect(await slow).toEqual({ status: 200, body: "late" });
      await freed.waitFor((f) => f.length === 2, "the connection back in the pool again");
      expect(lastCall.get(relaySocket!)).toBe("unref");
      expect(lastCall.size).toBe(1);
    } finally {
      await agent.close();
      await device.close();
    }
  });

  it("closes an idle stream, the first one included, and opens a new one for the next request", async () => {
    const s = stack();
    const device = await webDevice(s, "Http-Idle", (_req, res) => res.end("ok"));
    // This test is about the idle time, so it sets it short.
    const agent = new DeviceHttpAgent(
      s.client(),
      { deviceId: device.deviceId, streamName: "web" },
      { pool: { idleCloseInMs: 300 } },
    );
    const closed = new Recorder<string>();
    agent.pool.on("closed", (stream) => closed.push(stream.streamId));
    try {
      expect(await get(agent, "/")).toEqual({ status: 200, body: "ok" });
      const first = agent.pool.openStreams[0]!.streamId;
      await closed.waitFor((c) => c.length === 1, "the idle stream closed", scaled(15_000));
      expect(closed.items).toEqual([first]);
      expect(agent.pool.openStreams).toHaveLength(0);
      expect(await get(agent, "/")).toEqual({ status: 200, body: "ok" });
      expect(agent.pool.openStreams).toHaveLength(1);
      expect(agent.pool.openStreams[0]!.streamId).not.toBe(first);
      expect(device.streams.items).toHaveLength(2);
    } finally {
      await agent.close();
      await device.close();
    }
  });

  it("a keep-alive connection the device's web server closes while idle leaves the free list; the next request opens a fresh channel", async () => {
    const s = stack();
    const device = await webDevice(s, "Http-KeepAlive", (req, res) => {
      // No `Keep-Alive: timeout=` hint, as many servers (nginx) send none: Node's agent only uses a
      // hint when given a timeout of its own, and drops the connection at once for a hint under 2 s.
      res.setHeader("Connection", "keep-alive");
      res.end(`device says ${req.url}`);
    });
    // This test is about the server's idle timeout, so it sets it short.
    device.server.keepAliveTimeout = 200;
    const agent = new DeviceHttpAgent(s.client(), { deviceId: device.deviceId, streamName: "web" });
    const freed = new Recorder<Socket>();
    agent.on("free", freed.push);
    try {
      expect(await get(agent, "/a")).toEqual({ status: 200, body: "device says /a" });
      const [channel] = await freed.waitFor((f) => f.length === 1, "the connection back in the free list");
      const channelClosed = once(channel!, "close");
      const [serverSide] = device.connections.items;
      if (!serverSide!.closed) await onceWithin(serverSide!, "close", scaled(15_000));
      await withDeadline(channelClosed, scaled(15_000), "the service side's channel closed");
      expect(channel!.readableEnded).toBe(true);
      expect(Object.values(agent.freeSockets).flat()).toHaveLength(0);
      expect(await get(agent, "/b")).toEqual({ status: 200, body: "device says /b" });
      expect(device.connections.items).toHaveLength(2);
      const [, second] = await freed.waitFor((f) => f.length === 2, "the second connection freed");
      expect(second).not.toBe(channel);
      expect(agent.pool.openStreams).toHaveLength(1);
    } finally {
      await agent.close();
      await device.close();
    }
  });

  it("a connection's idle timeout fires again after activity, as on a TCP socket", async () => {
    const s = stack();
    // The device answers in three parts, each sent only once the client has timed out on the last.
    const parts = new Recorder<() => void>();
    const device = await webDevice(s, "Http-Idle", (_req, res) => {
      res.writeHead(200);
      res.write("a");
      parts.push(() => res.write("b"));
      parts.push(() => res.end("c"));
    });
    const agent = new DeviceHttpAgent(s.client(), { deviceId: device.deviceId, streamName: "web" });
    try {
      let timeouts = 0;
      const body = await withDeadline(
        new Promise<string>((resolve, reject) => {
          const req = http.get({ host: "device", path: "/", agent }, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (t: string) => (text += t));
            res.on("end", () => resolve(text));
          });
          req.on("error", reject);
          // This test is about the idle timeout, so it sets it short. A request hears only the
          // first 'timeout' (Node's ClientRequest listens once); the socket hears each one.
          req.on("socket", (socket) => {
            socket.setTimeout(100);
            socket.on("timeout", () => {
              timeouts++;
              void parts
                .waitFor((p) => p.length === 2, "the device's parts")
                .then((p) => p[timeouts - 1]?.());
            });
          });
        }),
        scaled(15_000),
        "the response, after two idle timeouts",
      );
      expect(body).toBe("abc");
      expect(timeouts).toBe(2);
    } finally {
      await agent.close();
      await device.close();
    }
  });

  it("a stream the device ends mid-request fails that request with a named error; the next one succeeds", async () => {
    const s = stack();
    const device = await webDevice(s, "Http-Torn", (req, res) => {
      if (req.url === "/hang") res.write("partial");
      else res.end("fine");
    });
    const agent = new DeviceHttpAgent(s.client(), { deviceId: device.deviceId, streamName: "web" });
    try {
      const failing = new Promise<Error>((resolve) => {
        const req = http.get({ host: "device", path: "/hang", agent }, (res) => {
          res.on("error", resolve);
          // The response started: the device now ends the stream under it.
          res.once("data", () => void device.streams.items[0]!.close("GoingAway", "device restarting"));
        });
        req.on("error", resolve);
      });
      const err = (await withDeadline(failing, scaled(15_000), "the request's error")) as StreamsError;
      expect(err).toMatchObject({ name: "TunnelError", code: "GoingAway" });
      expect(err.message).toMatch(/device restarting/);
      expect(await get(agent, "/")).toEqual({ status: 200, body: "fine" });
      expect(device.streams.items).toHaveLength(2);
    } finally {
      await agent.close();
      await device.close();
    }
  });

  it("failures name their cause: offline, rejected, never answering, capacity", async () => {
    const s = stack();
    const client = s.client();
    const target = (deviceId: string) => ({ deviceId, streamName: "web" });

    const offline = s.deviceId("Http-Offline");
    await s.registerDevice(offline);
    const offlineAgent = new DeviceHttpAgent(client, target(offline));
    expect(await requestError(offlineAgent)).toMatchObject({ name: "StreamsError", code: "DeviceNotOnline" });
    await offlineAgent.close();

    const rejecting = s.deviceId("Http-Rejecting");
    s.listen(await s.device(rejecting), { onRequest: () => ({ accept: false, reason: "no web here" }) });
    const rejectingAgent = new DeviceHttpAgent(client, target(rejecting));
    const rejected = await requestError(rejectingAgent);
    expect(rejected).toMatchObject({ name: "StreamsError", code: "StreamRejected" });
    expect(rejected.details.reason).toBe("no web here");
    await rejectingAgent.close();

    const silent = s.deviceId("Http-Silent");
    (await s.device(silent)).onDeviceMethod("deviceStream", () => undefined);
    const silentAgent = new DeviceHttpAgent(client, target(silent), {
      openOptions: { handshakeTimeoutInMs: 5000 },
    });
    expect(await requestError(silentAgent)).toMatchObject({ name: "StreamsError", code: "DeviceTimeout" });
    await silentAgent.close();

    // One stream of one channel, held by a request: the next request waits, then fails.
    const release = deferred();
    const busy = await webDevice(
      s,
      "Http-Busy",
      (_req, res) => void release.promise.then(() => res.end("done")),
      { maxChannelsPerStream: 1, maxStreams: 1 },
    );
    // The queue time is what this case is about, so it is short here.
    const busyAgent = new DeviceHttpAgent(client, target(busy.deviceId), {
      pool: { queueTimeoutInMs: 1500, overflowAfterInMs: 100 },
    });
    try {
      const held = get(busyAgent, "/held");
      await busy.connections.waitFor((c) => c.length === 1, "the first request at the device");
      expect(await requestError(busyAgent)).toMatchObject({ name: "StreamsError", code: "ChannelLimit" });
      release.resolve();
      expect(await held).toEqual({ status: 200, body: "done" });
    } finally {
      await busyAgent.close();
      await busy.close();
    }
  }, 90_000);

  it("WebSocket upgrades pass through the agent", async () => {
    const s = stack();
    const device = await webDevice(s, "Http-Ws", (_req, res) => res.end("page"));
    const wss = new WebSocketServer({ server: device.server });
    wss.on("connection", (ws, req) =>
      ws.on("message", (m) => ws.send(`${req.url} echo: ${(m as Buffer).toString()}`)),
    );
    const agent = new DeviceHttpAgent(s.client(), { deviceId: device.deviceId, streamName: "web" });
    try {
      expect(await get(agent, "/")).toEqual({ status: 200, body: "page" });
      const ws = new WebSocket("ws://device/socket", { agent });
      const reply = new Promise<string>((resolve, reject) => {
        ws.once("message", (m) => resolve((m as Buffer).toString()));
        ws.once("error", reject);
      });
      ws.once("open", () => ws.send("hello"));
      expect(await withDeadline(reply, scaled(15_000), "the echo")).toBe("/socket echo: hello");
      ws.close();
      await new Promise((r) => ws.once("close", r));
      expect(agent.pool.openStreams).toHaveLength(1);
    } finally {
      wss.close();
      await agent.close();
      await device.close();
    }
  });
});
