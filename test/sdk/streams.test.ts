/**
 * The service and device SDKs end to end. In `npm test` on the in-process stack: the official device
 * SDK over MQTT to the IoT Hub emulator, our Web PubSub emulator as the relay, the control plane on
 * Azurite. With `npm run test:live` the same tests run against a deployment (docs/live-tests.md);
 * checks of emulator internals run locally only (`target.local`, `localOnly`).
 */
import { randomBytes } from "node:crypto";
import { Agent } from "node:http";
import { type NetConnectOpts, type Socket, connect as netConnect } from "node:net";
import type { Client } from "azure-iot-device";
import { relayGroup } from "../../shared/streams/model";
import { DEFAULT_TUNNEL_OPTIONS, encodeFrame, type TunnelCloseInfo } from "../../client/tunnel";
import { type RelayConnection, connectRelay } from "../../client/sdk/relay";
import { type IncomingStream, type DeviceStreamListener } from "../../client/sdk/device";
import { type StreamsClient, type StreamsError } from "../../client/sdk/service";
import { rejection } from "../emulators/iothub/helpers";
import { Recorder, deferred, withDeadline } from "../helpers/events";
import { connectRelay as connectBareRelay } from "../helpers/relayClient";
import { createRaw, echo, roundTrip, roundTripReadOnly, sha256 } from "./helpers";
import { type ListenOptions, localOnly, scaled, useTarget } from "./target";

const stack = useTarget();

/** A device running an echo listener that records its streams. */
async function echoDevice(deviceId: string, extra: Partial<ListenOptions> = {}) {
  const s = stack();
  const client = await s.device(deviceId);
  const streams = new Recorder<IncomingStream>();
  const listener = s.listen(client, { onRequest: () => ({ accept: true }), ...extra });
  listener.on("stream", (stream) => {
    streams.push(stream);
    stream.on("channel", echo);
  });
  return { client, listener, streams };
}

/** An HTTP agent for relay WebSockets that keeps every socket it opens, to check they end. */
function recordingAgent(): { agent: Agent; sockets: Socket[] } {
  const sockets: Socket[] = [];
  const agent = new Agent();
  agent.createConnection = (options) => {
    const socket = netConnect(options as NetConnectOpts);
    sockets.push(socket);
    return socket;
  };
  return { agent, sockets };
}

/** The relay's disconnect reasons (local only: the emulator reports them in process). */
const disconnects = new Recorder<string>();
beforeAll(() => stack().local?.wps.lifecycle.on("disconnected", (info) => disconnects.push(info.reason)));

/** Polls a stream's record until `ready` holds: the control plane records reports asynchronously. */
async function streamRecord(
  service: StreamsClient,
  deviceId: string,
  streamId: string,
  ready: (info: Awaited<ReturnType<StreamsClient["getStream"]>>) => boolean,
) {
  const deadline = Date.now() + scaled(15_000);
  for (;;) {
    const info = await service.getStream(deviceId, streamId);
    if (ready(info) || Date.now() > deadline) return info;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("streams through the SDKs", () => {
  it("echo: opens, round-trips byte-identical, reports Normal and the byte counts", async () => {
    const s = stack();
    const deviceId = s.deviceId("Echo-Dev.1");
    const client = await s.device(deviceId);
    const requests: unknown[] = [];
    const listener = s.listen(client, {
      onRequest: (req) => {
        requests.push(req);
        return { accept: true, data: { hello: "from device" } };
      },
    });
    const deviceSide = new Recorder<TunnelCloseInfo>();
    listener.on("stream", (stream) => {
      stream.on("channel", echo);
      stream.on("close", deviceSide.push);
    });

    const service = s.client();
    const stream = await service.openStream(deviceId, "echo", { data: { who: "test" } });
    expect(stream.deviceResponse).toEqual({ hello: "from device" });
    expect(requests).toEqual([{ streamId: stream.streamId, name: "echo", data: { who: "test" } }]);

    const payload = randomBytes(300_000);
    const back = await withDeadline(
      roundTrip(await stream.openChannel("t1"), payload, 7919),
      scaled(15_000),
      "echo",
    );
    expect(sha256(back)).toBe(sha256(payload));

    const info = await stream.close();
    expect(info).toMatchObject({ reason: "Normal", byPeer: false });
    expect(info.stats.bytesSent).toBe(payload.length);
    expect(info.stats.bytesReceived).toBe(payload.length);
    const [deviceInfo] = await deviceSide.waitFor(
      (i) => i.length === 1,
      "device side closed",
      scaled(15_000),
    );
    expect(deviceInfo).toMatchObject({ reason: "Normal", byPeer: true });
    const log = s.local?.log;
    if (log) {
      // The report events reach the control plane (best effort, so wait for them).
      await log.entries.waitFor(() => true, "noop");
      // Each side sent its `report` before leaving; both sides' disconnects are processed after it.
      await log.entries.waitFor(
        (entries) =>
          entries.filter((e) => e.message === "relay.disconnected" && e.fields.streamId === stream.streamId)
            .length === 2,
        "both sides disconnected",
        15_000,
      );
    }
    // Locally the record must be complete once both disconnects are processed. Against Azure the
    // control plane's log is out of reach: wait on the record itself.
    const shown = log
      ? await service.getStream(deviceId, stream.streamId)
      : await streamRecord(
          service,
          deviceId,
          stream.streamId,
          (r) =>
            r.state === "Closed" &&
            r.bytesFromService === payload.length &&
            r.bytesFromDevice === payload.length,
        );
    expect(shown).toMatchObject({
      streamId: stream.streamId,
      name: "echo",
      deviceId,
      state: "Closed",
      bytesFromService: payload.length,
      bytesFromDevice: payload.length,
    });
  });

  it(
    "50 concurrent channels over one stream, one reader stalled: the rest flow, all intact, no SlowClient",
    async () => {
      const s = stack();
      await echoDevice(s.deviceId("Many-Dev"));
      const stream = await s.client().openStream(s.deviceId("Many-Dev"), "echo");
      const before = disconnects.items.length;
      const othersDone = deferred();
      let written = 0;
      let waitingForDrain = false;
      // Channel 0 sends more than the stream window and does not read until the 49 others are done: its
      // echo backs up to its writer, which must block, while the other channels keep flowing.
      const big = randomBytes(6 * 1024 * 1024 + 11);
      const slow = (async () => {
        const channel = await stream.openChannel("slow");
        const writer = (async () => {
          for (let off = 0; off < big.length; off += 65_521) {
            const ok = channel.write(big.subarray(off, off + 65_521));
            written = Math.min(big.length, off + 65_521);
            if (!ok) {
              waitingForDrain = true;
              await new Promise((resolve) => channel.once("drain", resolve));
              waitingForDrain = false;
            }
          }
          channel.end();
        })();
        let firstChunk = true;
        const back = await roundTripReadOnly(channel, async () => {
          if (!firstChunk) return;
          firstChunk = false;
          await othersDone.promise;
        });
        await writer;
        return back;
      })();
      const payloads = Array.from({ length: 49 }, (_, i) => randomBytes(100_000 + i * 1013));
      const results = await withDeadline(
        Promise.all(
          payloads.map(async (p, i) => roundTrip(await stream.openChannel(`c${i}`), p, 1000 + i * 97)),
        ),
        scaled(30_000),
        "49 channels while one is stalled",
      );
      // Backpressure reached the stalled channel's writer: it is blocked, most of its bytes unsent.
      expect(waitingForDrain).toBe(true);
      expect(written).toBeLessThan(big.length / 2);
      othersDone.resolve();
      results.forEach((back, i) => expect(sha256(back)).toBe(sha256(payloads[i]!)));
      expect(sha256(await withDeadline(slow, scaled(30_000), "the stalled channel, resumed"))).toBe(
        sha256(big),
      );
      // The relay dropped neither side (a SlowClient close would have ended the stream).
      expect(stream.closed).toBe(false);
      expect((await stream.close()).reason).toBe("Normal");
      // Locally the emulator also says why connections ended.
      if (s.local) expect(disconnects.items.slice(before).join()).not.toMatch(/SlowClient/);
    },
    scaled(60_000),
  );

  it(
    "a 16 MB payload with an awkward chunk size arrives byte-identical",
    async () => {
      const s = stack();
      await echoDevice(s.deviceId("Big-Dev"));
      const stream = await s.client().openStream(s.deviceId("Big-Dev"), "echo");
      const payload = randomBytes(16 * 1024 * 1024 + 3);
      const chunk = DEFAULT_TUNNEL_OPTIONS.maxDataPayload + 1;
      const back = await withDeadline(
        roundTrip(await stream.openChannel(), payload, chunk),
        scaled(60_000),
        "16 MB echo",
      );
      expect(back.length).toBe(payload.length);
      expect(sha256(back)).toBe(sha256(payload));
      await stream.close();
    },
    scaled(90_000),
  );

  it("a module identity runs the agent while another client holds the device identity", async () => {
    const s = stack();
    const deviceId = s.deviceId("Shared-Dev");
    const app = await s.device(deviceId);
    const appDisconnected = new Recorder<unknown>();
    app.on("disconnect", appDisconnected.push);
    const agent = await s.module(deviceId, "streams-agent");
    s.listen(agent, { onRequest: () => ({ accept: true }) }).on("stream", (st) => st.on("channel", echo));

    const stream = await s.client().openStream(deviceId, "echo", { moduleId: "streams-agent" });
    expect(stream.moduleId).toBe("streams-agent");
    const payload = randomBytes(10_000);
    expect(sha256(await roundTrip(await stream.openChannel(), payload, 333))).toBe(sha256(payload));
    await stream.close();
    expect(appDisconnected.items).toEqual([]);
  });

  it("a rejection carries the device's reason", async () => {
    const s = stack();
    s.listen(await s.device(s.deviceId("Rejecting-Dev")), {
      onRequest: () => ({ accept: false, reason: "no ssh here" }),
    });
    const err = (await rejection(
      s.client().openStream(s.deviceId("Rejecting-Dev"), "ssh"),
    )) as unknown as StreamsError;
    expect(err).toMatchObject({ name: "StreamsError", code: "StreamRejected", statusCode: 409 });
    expect(err.details.reason).toBe("no ssh here");
  });

  it("an offline device and an unknown device are told apart", async () => {
    const s = stack();
    await s.registerDevice(s.deviceId("Offline-Dev"));
    expect(await rejection(s.client().openStream(s.deviceId("Offline-Dev"), "ssh"))).toMatchObject({
      code: "DeviceNotOnline",
      statusCode: 404,
    });
    expect(await rejection(s.client().openStream(s.deviceId("Never-Registered"), "ssh"))).toMatchObject({
      code: "DeviceNotFound",
    });
  });

  it("a device that joins the relay but never speaks: HandshakeTimeout, and the stream is closed", async () => {
    const s = stack();
    const deviceId = s.deviceId("Silent-Dev");
    const client: Client = await s.device(deviceId);
    const bare: Array<Awaited<ReturnType<typeof connectBareRelay>>> = [];
    client.onDeviceMethod("deviceStream", (request, response) => {
      const p = request.payload as { relay: { url: string; token: string } };
      void connectBareRelay(p.relay.url, p.relay.token).then((relay) => {
        bare.push(relay);
        void response.send(200, { accepted: true });
      });
    });
    const { agent, sockets } = recordingAgent();
    const err = await rejection(
      s.client({ relayAgent: agent }).openStream(deviceId, "x", { handshakeTimeoutInMs: 5000 }),
    );
    expect(err).toMatchObject({ name: "StreamsError", code: "HandshakeTimeout" });
    // Rejected only once its relay socket is gone: a command failing here leaves nothing open.
    expect(sockets.map((socket) => socket.closed)).toEqual([true]);
    // The SDK closed the half-open stream: the control plane ends the silent device's connection.
    await withDeadline(bare[0]!.closed, scaled(15_000), "silent device disconnected");
  });

  it("the listener's close resolves once its streams' relay sockets are closed, not just the tunnels", async () => {
    const s = stack();
    const relays: RelayConnection[] = [];
    const deviceId = s.deviceId("Closing-Dev");
    const client = await s.device(deviceId);
    const listener = s.listen(client, {
      onRequest: () => ({ accept: true }),
      connectRelay: async (options) => {
        const relay = await connectRelay(options);
        relays.push(relay);
        return relay;
      },
    });
    listener.on("stream", (stream) => stream.on("channel", echo));
    const stream = await s.client().openStream(deviceId, "echo");
    expect(relays).toHaveLength(1);
    let socketClosed = false;
    void relays[0]!.whenClosed().then(() => (socketClosed = true));
    await listener.close("GoingAway");
    expect(socketClosed).toBe(true);
    expect((await withDeadline(stream.whenClosed(), scaled(15_000), "service side ends")).reason).toBe(
      "GoingAway",
    );
  });

  it("DELETE closes a live stream on both sides with a reason", async () => {
    const deviceId = stack().deviceId("Delete-Dev");
    const { streams } = await echoDevice(deviceId);
    const service = stack().client();
    const stream = await service.openStream(deviceId, "echo");
    const [device] = await streams.waitFor((i) => i.length === 1, "device stream");
    await service.closeStream(deviceId, stream.streamId);
    const [serviceInfo, deviceInfo] = await withDeadline(
      Promise.all([stream.whenClosed(), device!.whenClosed()]),
      scaled(15_000),
      "both sides closed",
    );
    expect(serviceInfo.reason).toBe("TransportClosed");
    expect(deviceInfo.reason).toBe("TransportClosed");
    expect(await service.getStream(deviceId, stream.streamId)).toMatchObject({
      state: "Closed",
      closedBy: "api",
    });
  });

  it("the agent dying mid-transfer ends the service side with an error, promptly", async () => {
    const s = stack();
    const relays: RelayConnection[] = [];
    const client = await s.device(s.deviceId("Dying-Dev"));
    const listener: DeviceStreamListener = s.listen(client, {
      onRequest: () => ({ accept: true }),
      connectRelay: async (options) => {
        const relay = await connectRelay(options);
        relays.push(relay);
        return relay;
      },
    });
    // The device reads a little, then its process "dies": the relay socket is cut without a close.
    listener.on("stream", (st) =>
      st.on("channel", (channel) => {
        channel.on("error", () => undefined);
        channel.once("data", () => relays[0]!.terminate());
      }),
    );
    const stream = await s.client().openStream(s.deviceId("Dying-Dev"), "sink");
    const channel = await stream.openChannel();
    const channelError = new Promise<Error>((resolve) => channel.once("error", resolve));
    const writing = (async () => {
      const chunk = randomBytes(64 * 1024);
      while (!channel.destroyed) {
        if (!channel.write(chunk)) await new Promise((r) => channel.once("drain", r).once("close", r));
      }
    })();
    const info = await withDeadline(stream.whenClosed(), scaled(15_000), "service side ends");
    expect(info.reason).toBe("TransportClosed");
    expect((await withDeadline(channelError, scaled(15_000), "channel error")).name).toBe("TunnelError");
    await writing;
  });

  it("a relay token is single use", async () => {
    const s = stack();
    await echoDevice(s.deviceId("Reuse-Dev"));
    const created = await createRaw(s, s.deviceId("Reuse-Dev"), "echo");
    expect(created.status).toBe(201);
    const options = {
      url: created.body.relay.url as string,
      token: created.body.relay.token as string,
      group: relayGroup(created.body.streamId as string),
      policy: s.relayPolicy,
    };
    const first = await connectRelay(options);
    const err = await rejection(connectRelay(options));
    expect(err).toMatchObject({ name: "RelayError", code: "RelayRefused", statusCode: 401 });
    expect(err.message).not.toContain(options.token);
    first.close("done");
    await first.whenClosed();
  });

  it("the device refuses a relay that is not its own (another host, another hub)", async () => {
    const s = stack();
    const { endpoint, hub, allowInsecure } = s.relayPolicy;
    s.listen(await s.device(s.deviceId("Strict-Dev")), {
      onRequest: () => ({ accept: true }),
      relay: { endpoint: "https://relay.example.com", hub, allowInsecure },
    });
    const outside = await rejection(s.client().openStream(s.deviceId("Strict-Dev"), "echo"));
    expect(outside).toMatchObject({ code: "StreamRejected" });
    expect((outside as unknown as StreamsError).details.reason).toMatch(/is not this device's relay/);

    s.listen(await s.device(s.deviceId("Strict-Hub-Dev")), {
      onRequest: () => ({ accept: true }),
      relay: { endpoint, hub: "OtherHub", allowInsecure },
    });
    const otherHub = await rejection(s.client().openStream(s.deviceId("Strict-Hub-Dev"), "echo"));
    expect((otherHub as unknown as StreamsError).details.reason).toMatch(
      /another hub than this device's hub 'OtherHub'/,
    );
  });

  localOnly("the device refuses ws:// unless allowed (local only: Azure's relay is wss://)", async () => {
    const s = stack();
    s.listen(await s.device(s.deviceId("Tls-Dev")), {
      onRequest: () => ({ accept: true }),
      // Configured as if the endpoint were https://, the emulator's ws:// relay is refused.
      relay: { endpoint: s.relayPolicy.endpoint.replace(/^http:/, "https:"), hub: s.relayPolicy.hub },
    });
    const insecure = await rejection(s.client().openStream(s.deviceId("Tls-Dev"), "echo"));
    expect((insecure as unknown as StreamsError).details.reason).toMatch(/not encrypted/);
  });

  it.each([
    ["random bytes", () => randomBytes(100), ["FrameCorrupt", "ProtocolError"]],
    [
      "a truncated HELLO",
      () =>
        encodeFrame(0, {
          type: "hello",
          minVersion: 1,
          maxVersion: 1,
          streamWindowBytes: 1 << 20,
          streamWindowMessages: 64,
          channelWindowBytes: 1 << 16,
          channelWindowMessages: 16,
          maxChannels: 4,
          maxDataPayload: 16384,
        }).subarray(0, 20),
      ["FrameCorrupt"],
    ],
    ["an empty frame", () => Buffer.alloc(0), ["FrameCorrupt"]],
  ])("%s from the relay: the device closes cleanly with a reason", async (_what, frame, reasons) => {
    const s = stack();
    const deviceId = s.deviceId(`Garbage-${reasons.length}-${_what.length}`);
    const { streams } = await echoDevice(deviceId);
    const created = await createRaw(s, deviceId, "echo");
    const attacker = await connectBareRelay(created.body.relay.url, created.body.relay.token);
    attacker.send(relayGroup(created.body.streamId), frame());
    const [device] = await streams.waitFor((i) => i.length === 1, "device stream");
    const info = await withDeadline(device!.whenClosed(), scaled(15_000), "device closes");
    expect(reasons).toContain(info.reason);
    expect(info.byPeer).toBe(false);
    await withDeadline(attacker.closed, scaled(15_000), "the control plane ends the other side");
  });

  it("listStreams follows nextLink; ids with special characters round-trip", async () => {
    const s = stack();
    const deviceId = s.deviceId("List.Dev_(1)@x");
    await echoDevice(deviceId);
    const service = s.client();
    const opened = [];
    for (let i = 0; i < 3; i++) opened.push(await service.openStream(deviceId, "echo"));
    const seen = [];
    for await (const st of service.listStreams(deviceId, { maxPageSize: 1 })) seen.push(st.streamId);
    expect(seen.sort()).toEqual(opened.map((o) => o.streamId).sort());
    await Promise.all(opened.map((o) => o.close()));
    const endpoints = await service.getEndpoints();
    expect(endpoints.iotHub.methodName).toBe("deviceStream");
  });
});
