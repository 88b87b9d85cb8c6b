/**
 * What a device agent joins, on the whole local stack (issue 12).
 * Row 2: an offer that did not come from this deployment's control plane. The attacker may invoke
 * direct methods (holds an IoT Hub service key) and mints relay tokens for a hub or a Web PubSub
 * resource of its own; it sends the offer straight through the IoT Hub emulator's REST API. The
 * agent must refuse it with a reason in its log and open no relay connection.
 * Row 6: a Repeatability-Request-ID repeated after its record was purged makes the same stream id
 * anew; the device must join for the new offer, not answer from its memory of the old one.
 */
import { request } from "node:https";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { SharedAccessSignature } from "azure-iot-common";
import { startAgent } from "../../client/cli/agent";
import { connectRelay } from "../../client/sdk/relay";
import { relayGroup } from "../../shared/streams/model";
import { createRaw } from "./helpers";
import { localTarget } from "./target";
import type { ConnectionInfo } from "../../emulators/webpubsub";
import { type WebPubSubEmulator, startWebPubSubEmulator } from "../../emulators/webpubsub";
import { useStack } from "./stack";

// Closed records may be purged at once, so a test can make the sweeper purge one.
const stack = useStack({ STREAMS_RETENTION_HOURS: "0" });
let theirs: WebPubSubEmulator;
beforeAll(async () => {
  theirs = await startWebPubSubEmulator({ port: 0 });
});
afterAll(async () => {
  await theirs?.close();
});

/** POST /twins/{id}/methods with the hub's service policy, as `az iot hub invoke-device-method` does. */
function invokeDirectMethod(deviceId: string, payload: unknown): Promise<{ status: number; body: any }> {
  const s = stack();
  const fields = new Map(
    s.hub.serviceConnectionString.split(";").map((kv) => {
      const i = kv.indexOf("=");
      return [kv.slice(0, i), kv.slice(i + 1)] as const;
    }),
  );
  const sas = SharedAccessSignature.create(
    fields.get("HostName")!,
    fields.get("SharedAccessKeyName")!,
    fields.get("SharedAccessKey")!,
    Math.floor(Date.now() / 1000) + 3600,
  ).toString();
  const body = JSON.stringify({ methodName: "deviceStream", payload, responseTimeoutInSeconds: 30 });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: s.hub.httpsPort,
        servername: "localhost",
        method: "POST",
        path: `/twins/${encodeURIComponent(deviceId)}/methods?api-version=2021-04-12`,
        ca: s.hub.caPem,
        headers: { authorization: sas, "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A well-formed v1 offer with a valid token for the relay it names. */
async function forgedOffer(relay: WebPubSubEmulator, hub: string, streamId: string) {
  const client = new WebPubSubServiceClient(relay.connectionString, hub, { allowInsecureConnection: true });
  const { url, token } = await client.getClientAccessToken({
    userId: "attacker",
    groups: [`stream.${streamId}`],
  });
  return {
    v: 1,
    streamId,
    name: "web",
    data: null,
    relay: { url: url.split("?")[0]!, token },
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
  };
}

describe("an offer sent straight through IoT Hub, not by the control plane", () => {
  it("is refused when it names another hub or another host: the reason is logged, no relay is joined", async () => {
    const s = stack();
    const deviceId = "Forged-Offer-Dev";
    const log: string[] = [];
    startAgent(await s.device(deviceId), {
      targets: new Map([["web", "echo"]]),
      relay: { endpoint: s.relayEndpoint, hub: s.relayHub, allowInsecure: true },
      log: (line) => log.push(line),
    });
    const seen: ConnectionInfo[] = [];
    const record = (c: ConnectionInfo) => seen.push(c);
    s.wps.lifecycle.on("connected", record);
    theirs.lifecycle.on("connected", record);
    try {
      const otherHub = await invokeDirectMethod(deviceId, await forgedOffer(s.wps, "elsewhere", "f1"));
      expect(otherHub).toEqual({
        status: 200,
        body: {
          status: 403,
          payload: { reason: "refused: the relay URL names another hub than this device's hub 'streams'" },
        },
      });
      const otherHost = await invokeDirectMethod(deviceId, await forgedOffer(theirs, s.relayHub, "f2"));
      expect(otherHost.body.status).toBe(403);
      expect(otherHost.body.payload.reason).toBe(
        `refused: relay ws://127.0.0.1:${theirs.port} is not this device's relay ${s.relayEndpoint.replace("http:", "ws:")}`,
      );
      await Promise.all([s.wps.eventsSettled(), theirs.eventsSettled()]);
      expect(seen).toEqual([]);
      expect(log).toEqual([
        `refused stream f1 (403): ${otherHub.body.payload.reason}`,
        `refused stream f2 (403): ${otherHost.body.payload.reason}`,
      ]);

      // The same agent, the same observers: a stream from the control plane does join, and is seen
      // (the emulator announces a connection before the client hears it is connected).
      const stream = await s.client().openStream(deviceId, "web");
      expect(seen.map((c) => [c.hub, c.userId])).toEqual([
        [s.relayHub, `${stream.streamId}.device`],
        [s.relayHub, `${stream.streamId}.service`],
      ]);
      await stream.close();
    } finally {
      s.wps.lifecycle.off("connected", record);
      theirs.lifecycle.off("connected", record);
    }
  });
});

describe("a Repeatability-Request-ID repeated after its record was purged", () => {
  it("gives a stream that establishes: the device joins the relay for the new offer", async () => {
    const s = stack();
    const target = localTarget(s);
    const deviceId = "Repeat-Purge-Dev";
    const joined: string[] = [];
    s.listen(await s.device(deviceId), { onRequest: () => ({ accept: true }) }).on("stream", (st) =>
      joined.push(st.streamId),
    );
    const service = s.services.service;
    const openAndJoin = async () => {
      const created = await createRaw(target, deviceId, "echo", { "repeatability-request-id": "req-purged" });
      expect(created.status).toBe(201);
      const streamId = created.body.streamId as string;
      const relay = await connectRelay({
        url: created.body.relay.url,
        token: created.body.relay.token,
        group: relayGroup(streamId),
        policy: { allowedHosts: [s.relayHost], allowInsecure: true },
      });
      return { streamId, relay, state: (await service.get(deviceId, streamId))?.state };
    };

    const first = await openAndJoin();
    expect(first.state).toBe("Established");
    expect(await service.close(deviceId, first.streamId, "test")).toBe(true);
    first.relay.close("done");
    await first.relay.whenClosed();
    // Retention 0: the sweeper purges the closed record (a pass may first finish closing it).
    for (let pass = 0; (await service.get(deviceId, first.streamId)) && pass < 5; pass++)
      await service.sweep();
    expect(await service.get(deviceId, first.streamId)).toBeUndefined();

    const second = await openAndJoin();
    expect(second.streamId).toBe(first.streamId);
    expect(second.state).toBe("Established");
    expect(joined).toEqual([first.streamId, first.streamId]);
    second.relay.close("done");
    await second.relay.whenClosed();
  });
});
