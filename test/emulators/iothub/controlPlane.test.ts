/**
 * The control plane's direct-method path against the emulator, through the production adapter:
 * StreamService (on Azurite) signals real device SDK clients via IotHubDirectMethodInvoker, and
 * every IoT Hub outcome lands in the stream state the control plane promises.
 */
import { TableClient } from "@azure/data-tables";
import { ApiError } from "../../../shared/errors";
import { IotHubDirectMethodInvoker, createIotHubClients } from "../../../shared/iothub";
import { TableStreamStore } from "../../../shared/store/streamStore";
import { relayGroup, relayUserId } from "../../../shared/streams/model";
import { StreamService } from "../../../shared/streams/service";
import { startIotHubEmulator, type IotHubEmulator } from "../../../emulators/iothub";
import { useAzurite } from "../../helpers/azurite";
import { MemoryRelay } from "../../helpers/fakes";
import { Devices } from "./helpers";

const azurite = useAzurite();
let hub: IotHubEmulator;
const devices = new Devices(() => hub);
const relay = new MemoryRelay();
let service: StreamService;

beforeAll(async () => {
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
  const { client } = createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem });
  const table = TableClient.fromConnectionString(azurite().connectionString, "streamsiothub", {
    allowInsecureConnection: true,
  });
  service = new StreamService({
    store: await TableStreamStore.open(table),
    relay,
    signaller: new IotHubDirectMethodInvoker(client),
    logger: { log: () => undefined },
    limits: { maxPerDevice: 4, maxLifetimeSeconds: 0, retentionHours: 1, relayTokenMinutes: 2 },
    methodName: "deviceStream",
  });
}, 30_000);

afterAll(async () => {
  await devices.closeAll();
  await hub.close();
});

/** A device that joins the relay, then answers the stream request, as the protocol requires. */
async function agent(deviceId: string, answer: "accept" | "reject" | "never"): Promise<void> {
  const device = await devices.device(await hub.createDevice(deviceId));
  device.onDeviceMethod("deviceStream", (request, response) => {
    if (answer === "never") return;
    if (answer === "reject") {
      void response.send(403, { accepted: false, reason: "ssh is disabled" });
      return;
    }
    const { streamId } = request.payload as { streamId: string };
    const connectionId = `dev-${streamId}`;
    void service
      .onConnect(relayUserId(streamId, "device"), connectionId)
      .then((outcome) => {
        relay.members.set(relayGroup(streamId), [{ connectionId, userId: relayUserId(streamId, "device") }]);
        return response.send(outcome.accept ? 200 : 500, {
          accepted: outcome.accept,
          data: { banner: "hi" },
        });
      })
      .catch((err: unknown) => response.send(500, { accepted: false, reason: String(err) }));
  });
}

const create = (deviceId: string) =>
  service.create({ deviceId, name: "ssh", handshakeTimeoutSeconds: 5, openedBy: "policy:service" });

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

async function stateOf(deviceId: string): Promise<string | undefined> {
  return (await service.list(deviceId, { pageSize: 10 })).items[0]?.state;
}

test("an online device that accepts: the stream is Accepted with the device's data", async () => {
  await agent("cp-accepts", "accept");
  const created = await create("cp-accepts");
  expect(created.record.state).toBe("Accepted");
  expect(created.deviceResponse).toEqual({ banner: "hi" });
});

test("a device that answers 403: 409 StreamRejected", async () => {
  await agent("cp-rejects", "reject");
  const err = await apiError(create("cp-rejects"));
  expect([err.statusCode, err.code]).toEqual([409, "StreamRejected"]);
  expect(await stateOf("cp-rejects")).toBe("Rejected");
});

test("an unregistered device (404001): 404 DeviceNotFound, stream Failed", async () => {
  const err = await apiError(create("cp-unknown"));
  expect([err.statusCode, err.code]).toEqual([404, "DeviceNotFound"]);
  expect(await stateOf("cp-unknown")).toBe("Failed");
});

test("a registered device that is offline (404103): 404 DeviceNotOnline, stream DeviceOffline", async () => {
  await hub.createDevice("cp-offline");
  const err = await apiError(create("cp-offline"));
  expect([err.statusCode, err.code]).toEqual([404, "DeviceNotOnline"]);
  expect(await stateOf("cp-offline")).toBe("DeviceOffline");
});

test("a device that never answers (504101): 504 DeviceTimeout, stream TimedOut", async () => {
  await agent("cp-silent", "never");
  const err = await apiError(create("cp-silent"));
  expect([err.statusCode, err.code]).toEqual([504, "DeviceTimeout"]);
  expect(await stateOf("cp-silent")).toBe("TimedOut");
}, 20_000);
