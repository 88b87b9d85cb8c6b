import {
  SendMessageError,
  WebPubSubClient,
  WebPubSubJsonProtocol,
  WebPubSubJsonReliableProtocol,
  type OnGroupDataMessageArgs,
} from "@azure/web-pubsub-client";
import type { WebPubSubEmulator } from "../../../emulators/webpubsub";
import { Inbox, rawClient, serviceClient, startEmulator } from "./helpers";

let emulator: WebPubSubEmulator;
const clients: WebPubSubClient[] = [];
beforeAll(async () => {
  emulator = await startEmulator();
});
afterEach(async () => {
  // Wait for "stopped": only then has the client disposed of its keepalive and ack timers.
  await Promise.all(
    clients.splice(0).map((c) => {
      const stopped = new Promise<void>((resolve) => c.on("stopped", () => resolve()));
      c.stop();
      return stopped;
    }),
  );
});
afterAll(async () => {
  await emulator.close();
});

async function officialClient(hub: string, userId: string, roles: string[], reliable: boolean) {
  const { url } = await serviceClient(emulator, hub).getClientAccessToken({ userId, roles });
  const client = new WebPubSubClient(url, {
    protocol: reliable ? WebPubSubJsonReliableProtocol() : WebPubSubJsonProtocol(),
    autoRejoinGroups: false,
    // A refused send is final here; the default retries it three times, a second apart.
    messageRetryOptions: { maxRetries: 0 },
    // The client's keepalive loops sleep up to 40 s after stop(), holding jest open; the emulator's
    // ping/pong is covered by the raw-socket tests.
    keepAliveIntervalInMs: 0,
    keepAliveTimeoutInMs: 0,
  });
  clients.push(client);
  const messages = new Inbox<OnGroupDataMessageArgs>();
  client.on("group-message", (e) => messages.push(e));
  const connected = new Promise<string>((resolve) => client.on("connected", (e) => resolve(e.connectionId)));
  await client.start();
  return { client, messages, connectionId: await connected };
}

describe("@azure/web-pubsub-client over json.webpubsub.azure.v1", () => {
  it("joins, sends text/json/binary to a group with noEcho, and is refused without permission", async () => {
    const a = await officialClient(
      "json1",
      "alice",
      ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.room"],
      false,
    );
    const b = await officialClient("json1", "bob", ["webpubsub.joinLeaveGroup"], false);
    await a.client.joinGroup("room");
    await b.client.joinGroup("room");
    await a.client.sendToGroup("room", "hello", "text");
    await a.client.sendToGroup("room", { n: 1 }, "json", { noEcho: true });
    await a.client.sendToGroup("room", new Uint8Array([1, 2, 3]).buffer, "binary", { noEcho: true });
    const got = await b.messages.waitCount(3);
    expect(got.map((m) => [m.message.fromUserId, m.message.dataType, m.message.data])).toEqual([
      ["alice", "text", "hello"],
      ["alice", "json", { n: 1 }],
      ["alice", "binary", new Uint8Array([1, 2, 3]).buffer],
    ]);
    // Only the message without noEcho came back to the sender.
    await a.messages.wait();
    expect(a.messages.items.map((m) => m.message.data)).toEqual(["hello"]);

    const refused = b.client.sendToGroup("room", "x", "text");
    await expect(refused).rejects.toBeInstanceOf(SendMessageError);
    await expect(refused).rejects.toMatchObject({ errorDetail: { name: "Forbidden" } });
  });

  it("closes 1007 on invalid JSON, 1003 on a binary frame, answers ping, and acks bad requests", async () => {
    const { url } = await serviceClient(emulator, "json2").getClientAccessToken();
    const a = await rawClient(url, ["json.webpubsub.azure.v1"]);
    a.ws.send(JSON.stringify({ type: "ping" }));
    a.ws.send(JSON.stringify({ type: "joinGroup", ackId: 3 }));
    a.ws.send(JSON.stringify({ type: "nonsense", ackId: 4 }));
    await a.frames.waitCount(4);
    expect(a.frames.items.slice(1).map((f) => JSON.parse(f.data.toString()))).toEqual([
      { type: "pong" },
      { type: "ack", ackId: 3, success: false, error: { name: "BadRequest", message: expect.any(String) } },
      { type: "ack", ackId: 4, success: false, error: { name: "BadRequest", message: expect.any(String) } },
    ]);
    a.ws.send("{not json");
    expect((await a.closed).code).toBe(1007);
    const b = await rawClient(url, ["json.webpubsub.azure.v1"]);
    b.ws.send(Buffer.from("{}"));
    expect((await b.closed).code).toBe(1003);
  });
});

describe("@azure/web-pubsub-client over json.reliable.webpubsub.azure.v1", () => {
  it("recovers from a dropped socket without losing, duplicating or reordering messages", async () => {
    const receiver = await officialClient("rel1", "receiver", ["webpubsub.joinLeaveGroup"], true);
    const sender = await officialClient("rel1", "sender", ["webpubsub.sendToGroup"], false);
    await receiver.client.joinGroup("g");
    let disconnectedUpstream = false;
    emulator.lifecycle.on("disconnected", (e) => {
      if (e.connectionId === receiver.connectionId) disconnectedUpstream = true;
    });
    const recovered = new Promise((resolve) => emulator.lifecycle.once("recovered", resolve));
    const stopped = new Inbox<string>();
    receiver.client.on("disconnected", () => stopped.push("disconnected"));
    const total = 60;
    for (let i = 0; i < total; i++) {
      if (i === 20) {
        expect(emulator.dropTransport("rel1", receiver.connectionId)).toBe(true);
      }
      // Messages 20..39 are sent while the receiver may still be reconnecting.
      await sender.client.sendToGroup("g", { i }, "json");
    }
    await expect(recovered).resolves.toMatchObject({ connectionId: receiver.connectionId });
    const got = await receiver.messages.waitCount(total);
    expect(got.map((m) => (m.message.data as { i: number }).i)).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );
    expect(got.map((m) => m.message.sequenceId)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(disconnectedUpstream).toBe(false);
    expect(stopped.items).toEqual([]);
  });

  it("refuses to recover an unknown connection with 1008, so the client stops", async () => {
    const { url } = await serviceClient(emulator, "rel2").getClientAccessToken();
    const ws = `${url}&awps_connection_id=nope&awps_reconnection_token=nope`;
    const c = await rawClient(ws, ["json.reliable.webpubsub.azure.v1"]);
    expect((await c.closed).code).toBe(1008);
  });

  it("expires an unrecovered connection after the recovery window and reports it", async () => {
    const short = await startEmulator({ recoveryWindowMs: 200 });
    try {
      const { url } = await serviceClient(short, "rel3").getClientAccessToken();
      const c = await rawClient(url, ["json.reliable.webpubsub.azure.v1"]);
      const { connectionId } = JSON.parse((await c.frames.wait()).data.toString());
      const gone = new Promise((resolve) => short.lifecycle.on("disconnected", resolve));
      c.ws.terminate();
      await expect(gone).resolves.toMatchObject({
        connectionId,
        reason: expect.stringContaining("not recovered"),
      });
    } finally {
      await short.close();
    }
  });
});
