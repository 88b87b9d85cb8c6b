/**
 * The control plane against the real protocols: Azurite, our Web PubSub emulator calling the
 * relay-event route over HTTP with signed CloudEvents, our IoT Hub emulator with the official
 * device SDK over MQTT and the production IoT Hub adapter. Includes the emulator's fault
 * injection of non-blocking events, which the state machine must survive.
 */
import type { Client } from "azure-iot-device";
import { encodeIdSegment } from "../../common/ids";
import type { LocalHost } from "../../devstack/host";
import { startControlPlaneHost } from "../../devstack/controlPlaneHost";
import { type IotHubEmulator, startIotHubEmulator } from "../../emulators/iothub";
import {
  type EventFault,
  type EventInfo,
  type WebPubSubEmulator,
  startWebPubSubEmulator,
} from "../../emulators/webpubsub";
import { createServices } from "../../shared/app";
import { loadConfig } from "../../shared/config";
import type { AppServices } from "../../shared/routes";
import { relayGroup } from "../../shared/streams/model";
import { type AzuriteTable, startAzuriteTable } from "../../devstack/azurite";
import { POLICIES, sas } from "../helpers/controlPlane";
import { Devices } from "../emulators/iothub/helpers";
import { withDeadline } from "../helpers/events";
import { type LogEntry, recordingLogger } from "../helpers/logger";
import { type RelayTestClient, connectRelay } from "../helpers/relayClient";

const V = "api-version=2026-12-01";

interface Stack {
  azurite: AzuriteTable;
  host: LocalHost;
  wps: WebPubSubEmulator;
  hub: IotHubEmulator;
  services: AppServices;
  devices: Devices;
  log: ReturnType<typeof recordingLogger>;
  clock: { offsetMs: number };
  faults: { next: (type: EventInfo["type"]) => EventFault };
}

let stack: Stack;

beforeAll(async () => {
  const log = recordingLogger();
  const clock = { offsetMs: 0 };
  const faults: Stack["faults"] = { next: () => ({ action: "deliver" }) };
  // The host must be listening before the emulator can be told where to send events.
  const { host, eventHandler, attach } = await startControlPlaneHost({
    logger: { log: (level, msg, fields) => level === "error" && console.error(msg, fields) },
  });
  const wps = await startWebPubSubEmulator({
    port: 0,
    eventHandlers: { streams: eventHandler },
    faults: (event) => faults.next(event.type),
    logger: (line) => process.env.DEBUG_EMULATORS && console.log(line),
  });
  const hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
  const azurite = await startAzuriteTable({ port: 0 });
  const config = loadConfig({
    TABLES_CONNECTION_STRING: azurite.connectionString,
    WEBPUBSUB_CONNECTION_STRING: wps.connectionString,
    IOTHUB_CONNECTION_STRING: hub.serviceConnectionString,
    IOTHUB_CA_FILE: hub.caPath,
    SERVICE_SAS_POLICIES: JSON.stringify(POLICIES),
  });
  const services = await createServices(config, {
    logger: log.logger,
    now: () => Date.now() + clock.offsetMs,
  });
  attach(services);
  stack = { azurite, host, wps, hub, services, devices: new Devices(() => hub), log, clock, faults };
}, 60_000);

// Outside in: the relay's last disconnected events still reach a working control plane.
afterAll(async () => {
  await stack?.devices.closeAll();
  await stack?.wps.close();
  await stack?.hub.close();
  await stack?.host.close();
  await stack?.azurite.close();
}, 30_000);

/** A device app that joins the relay before it answers, as the stream protocol requires. */
async function deviceThatAccepts(deviceId: string, relays: RelayTestClient[]): Promise<Client> {
  const client = await stack.devices.device(await stack.hub.createDevice(deviceId));
  client.onDeviceMethod("deviceStream", (request, response) => {
    const payload = request.payload as { relay: { url: string; token: string } };
    connectRelay(payload.relay.url, payload.relay.token).then(
      (relay) => {
        relays.push(relay);
        void response.send(200, { accepted: true, data: { hello: deviceId } });
      },
      (err: Error) => void response.send(500, { reason: err.message }),
    );
  });
  return client;
}

async function openStream(deviceId: string) {
  const res = await fetch(`${stack.host.url}/api/devices/${encodeIdSegment(deviceId)}/streams?${V}`, {
    method: "POST",
    headers: { authorization: sas(), "content-type": "application/json" },
    body: JSON.stringify({ name: "ssh", handshakeTimeoutSeconds: 15 }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function state(deviceId: string, streamId: string) {
  const res = await fetch(
    `${stack.host.url}/api/devices/${encodeIdSegment(deviceId)}/streams/${streamId}?${V}`,
    {
      headers: { authorization: sas() },
    },
  );
  return (await res.json()) as Record<string, any>;
}

const transitionTo = (streamId: string, to: string) => (entries: readonly LogEntry[]) =>
  entries.some(
    (e) => e.message === "stream.transition" && e.fields.streamId === streamId && e.fields.to === to,
  );

async function establish(deviceId: string) {
  const relays: RelayTestClient[] = [];
  await deviceThatAccepts(deviceId, relays);
  const created = await openStream(deviceId);
  expect(created).toMatchObject({ status: 201 });
  const device = relays[0]!;
  const service = await connectRelay(created.body.relay.url, created.body.relay.token);
  await stack.log.entries.waitFor(transitionTo(created.body.streamId, "Established"), "Established");
  return { streamId: created.body.streamId as string, created, device, service };
}

describe("the control plane on the emulators", () => {
  it("opens a stream end to end; bytes flow; one side leaving tears down the other", async () => {
    const { streamId, created, device, service } = await establish("Emu-Dev.1");
    expect(created.body.deviceResponse).toEqual({ hello: "Emu-Dev.1" });
    expect(await state("Emu-Dev.1", streamId)).toMatchObject({ state: "Established" });

    service.send(relayGroup(streamId), Buffer.from("ping"));
    await device.received.waitFor((items) => items.length === 1, "device receives");
    expect(device.received.items[0]!.toString()).toBe("ping");

    await service.close();
    const closed = await withDeadline(device.closed, 15_000, "device side torn down");
    expect(closed.code).toBeGreaterThanOrEqual(1000);
    await stack.log.entries.waitFor(transitionTo(streamId, "Closed"), "Closed");
    expect(await state("Emu-Dev.1", streamId)).toMatchObject({ state: "Closed", closedBy: "service" });
  });

  it("refuses a reused relay token, and a token of one stream on another, before the upgrade", async () => {
    const relays: RelayTestClient[] = [];
    await deviceThatAccepts("Emu-reuse", relays);
    const a = await openStream("Emu-reuse");
    const b = await openStream("Emu-reuse");
    const first = await connectRelay(a.body.relay.url, a.body.relay.token);
    await expect(connectRelay(a.body.relay.url, a.body.relay.token)).rejects.toThrow(/401/);
    // b's device token was used by the device; b's service token opens b only.
    const bService = await connectRelay(b.body.relay.url, b.body.relay.token);
    expect(bService.connectionId).not.toBe(first.connectionId);
    await Promise.all([first.close(), bService.close(), ...relays.map((r) => r.close())]);
  });

  it("DELETE closes both relay connections of a live stream at once", async () => {
    const { streamId, device, service } = await establish("Emu-delete");
    const res = await fetch(
      `${stack.host.url}/api/devices/${encodeIdSegment("Emu-delete")}/streams/${streamId}?${V}`,
      {
        method: "DELETE",
        headers: { authorization: sas() },
      },
    );
    expect(res.status).toBe(204);
    await withDeadline(Promise.all([device.closed, service.closed]), 15_000, "both sides closed");
    expect(await state("Emu-delete", streamId)).toMatchObject({ state: "Closed", closedBy: "api" });
  });

  it("tells DeviceNotFound from DeviceNotOnline by the direct method's own error", async () => {
    expect((await openStream("Emu-never-registered")).body.error.code).toBe("DeviceNotFound");
    await stack.hub.createDevice("Emu-offline");
    const offline = await openStream("Emu-offline");
    expect(offline.status).toBe(404);
    expect(offline.body.error.code).toBe("DeviceNotOnline");
  });

  it("maps a device's rejection to 409 with its reason", async () => {
    const client = await stack.devices.device(await stack.hub.createDevice("Emu-rejects"));
    client.onDeviceMethod("deviceStream", (_req, res) => void res.send(403, { reason: "no ssh here" }));
    const res = await openStream("Emu-rejects");
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: "StreamRejected", reason: "no ssh here" });
  });
});

describe("surviving the relay's event faults", () => {
  afterEach(() => {
    stack.faults.next = () => ({ action: "deliver" });
    stack.clock.offsetMs = 0;
  });

  it("a dropped disconnected event: the sweeper finds the connection gone and closes the stream", async () => {
    const { streamId, device, service } = await establish("Emu-drop");
    stack.faults.next = (type) => (type === "disconnected" ? { action: "drop" } : { action: "deliver" });
    await service.close();
    expect(await state("Emu-drop", streamId)).toMatchObject({ state: "Established" });
    stack.clock.offsetMs = 6 * 60_000;
    await stack.services.service.sweep();
    expect(await state("Emu-drop", streamId)).toMatchObject({ state: "Closed", closeCode: "ConnectionLost" });
    await withDeadline(device.closed, 15_000, "device side torn down by the sweeper");
  });

  it("a duplicated disconnected event closes the stream once", async () => {
    const { streamId, service } = await establish("Emu-dup");
    stack.faults.next = (type) => (type === "disconnected" ? { action: "duplicate" } : { action: "deliver" });
    await service.close();
    await stack.log.entries.waitFor(transitionTo(streamId, "Closed"), "Closed");
    // The duplicate too must have been handled before counting (a wait on the log could not tell).
    await stack.wps.eventsSettled();
    const closings = stack.log.entries.items.filter(
      (e) => e.message === "stream.transition" && e.fields.streamId === streamId && e.fields.to === "Closed",
    );
    expect(closings).toHaveLength(1);
  });

  it("a handler answering 503 twice to connect and disconnected: one stream, one of each transition", async () => {
    // Every attempt reaches the control plane and is processed; only its answer is lost. With
    // Azure's waits (1 s, then 3 s) each event arrives three times.
    stack.faults.next = (type) =>
      type === "connect" || type === "disconnected"
        ? { action: "serverError", times: 2, reachesHandler: true }
        : { action: "deliver" };
    const { streamId, service, device } = await establish("Emu-retried");
    await service.close();
    await withDeadline(device.closed, 30_000, "device side torn down");
    await stack.wps.eventsSettled();
    const mine = stack.log.entries.items.filter((e) => e.fields.streamId === streamId);
    const transitions = mine.filter((e) => e.message === "stream.transition").map((e) => e.fields.to);
    expect(transitions).toEqual(["Requested", "Accepted", "Established", "Closed"]);
    expect(mine.filter((e) => e.message === "relay.connect.refused")).toEqual([]);
    const list = await fetch(`${stack.host.url}/api/devices/${encodeIdSegment("Emu-retried")}/streams?${V}`, {
      headers: { authorization: sas() },
    });
    expect(((await list.json()) as { value: unknown[] }).value).toHaveLength(1);
  }, 60_000);

  it("delayed and reordered events still end in Closed, and a healthy stream survives the sweeper", async () => {
    const delayed = await establish("Emu-delay");
    const healthy = await establish("Emu-healthy");
    stack.faults.next = (type) =>
      type === "disconnected" ? { action: "delay", ms: 200 } : { action: "deliver" };
    await delayed.service.close();
    await stack.log.entries.waitFor(transitionTo(delayed.streamId, "Closed"), "Closed after a delay");

    const reordered = await establish("Emu-reorder");
    let held = false;
    stack.faults.next = (type) => {
      if (type === "disconnected" && !held) {
        held = true;
        return { action: "reorder" };
      }
      return { action: "deliver" };
    };
    await reordered.service.close();
    // The held event goes out right after the next one: another stream's service side leaving.
    const next = await establish("Emu-reorder-next");
    await next.service.close();
    await stack.log.entries.waitFor(transitionTo(next.streamId, "Closed"), "the next stream Closed");
    await stack.log.entries.waitFor(transitionTo(reordered.streamId, "Closed"), "Closed after reordering");

    stack.clock.offsetMs = 6 * 60_000;
    await stack.services.service.sweep();
    expect(await state("Emu-healthy", healthy.streamId)).toMatchObject({ state: "Established" });
    await Promise.all([healthy.service.close(), healthy.device.close()]);
  });
});
