import { once } from "node:events";
import WebSocket from "ws";
import { decodeDownstream, PROTOBUF_SUBPROTOCOL } from "../../../client/webpubsub";
import { serviceClient, startEmulator, startEventHandler } from "./helpers";

describe("keepalive and shutdown", () => {
  it("pings clients and drops one that stops answering", async () => {
    const emulator = await startEmulator({ keepAliveIntervalMs: 200 });
    try {
      const { url } = await serviceClient(emulator, "ka").getClientAccessToken();
      const lively = new WebSocket(url, [PROTOBUF_SUBPROTOCOL]);
      const silent = new WebSocket(url, [PROTOBUF_SUBPROTOCOL], { autoPong: false });
      const ids = await Promise.all(
        [lively, silent].map(async (ws) => {
          const [data] = (await once(ws, "message")) as [Buffer];
          const msg = decodeDownstream(data);
          return msg.type === "connected" ? msg.connectionId : "";
        }),
      );
      // Generous interval: the lively client must answer pings even on a loaded machine.
      const dropped = new Promise((resolve) =>
        emulator.lifecycle.on("disconnected", (e) => e.connectionId === ids[1] && resolve(e)),
      );
      await once(lively, "ping");
      await expect(dropped).resolves.toMatchObject({ connectionId: ids[1], reason: "KeepAliveTimeout" });
      expect(lively.readyState).toBe(WebSocket.OPEN);
      lively.close();
      await once(lively, "close");
    } finally {
      await emulator.close();
    }
  });

  it("on close() tells clients why, closes them and reports every disconnection upstream", async () => {
    const handler = await startEventHandler(() => ({ status: 204 }));
    const emulator = await startEmulator({ eventHandlers: { hub: handler.url } });
    const { url } = await serviceClient(emulator, "hub").getClientAccessToken();
    const ws = new WebSocket(url, ["json.webpubsub.azure.v1"]);
    const frames: string[] = [];
    ws.on("message", (d: Buffer) => frames.push(d.toString()));
    await once(ws, "open");
    await handler.events.wait((e) => e.headers["ce-eventname"] === "connected");
    const closed = once(ws, "close");
    await emulator.close();
    const [code] = (await closed) as [number];
    expect(code).toBe(1000);
    expect(JSON.parse(frames[frames.length - 1]!)).toEqual({
      type: "system",
      event: "disconnected",
      message: "The service is shutting down.",
    });
    expect(handler.events.items.map((e) => e.headers["ce-eventname"])).toEqual([
      "connect",
      "connected",
      "disconnected",
    ]);
    await handler.close();
  });
});
