import { Client as ServiceClient } from "azure-iothub";
import { startIotHubEmulator, type IotHubEmulator } from "../../../emulators/iothub";
import { createIotHubClients } from "../../../shared/iothub";
import { Devices } from "./helpers";

let hub: IotHubEmulator;
const lines: string[] = [];
const devices = new Devices(() => hub);
let service: ServiceClient;

beforeAll(async () => {
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0, log: (l) => lines.push(l) });
  service = createIotHubClients({ connectionString: hub.serviceConnectionString, ca: hub.caPem }).client;
});
afterAll(async () => {
  await devices.closeAll();
  await hub.close();
  console.log(lines.join("\n"));
});

test("accept", async () => {
  const cs = await hub.createDevice("dev1");
  const device = await devices.connect(cs);
  device.onDeviceMethod("echo", (req, res) => {
    void res.send(201, { got: req.payload });
  });
  const { result } = await service.invokeDeviceMethod("dev1", {
    methodName: "echo",
    payload: { a: 1 },
    responseTimeoutInSeconds: 5,
    connectTimeoutInSeconds: 5,
  });
  expect(result).toEqual({ status: 201, payload: { got: { a: 1 } } });
});
