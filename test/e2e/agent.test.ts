/**
 * The device agent as a real process when IoT Hub goes away for good: the device SDK gives up on a
 * connection reset (it does not retry one), and then holds nothing open, so
 * without its own handling the agent ended with exit code 0 while serving nothing.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { EXIT } from "../../client/cli/exitCodes";
import { type IotHubEmulator, startIotHubEmulator } from "../../emulators/iothub";
import { withDeadline } from "../helpers/events";
import { cli, ensureBuilt, killAll } from "./support";

jest.setTimeout(120_000);

let hub: IotHubEmulator | undefined;

/** A TCP relay to the hub's MQTT port that can later reset every connection, old and new. */
async function cuttableLink(target: number): Promise<{ port: number; cut(): void; close(): void }> {
  const open = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((socket) => {
    if (cut) return socket.resetAndDestroy();
    const upstream = connect(target, "127.0.0.1");
    for (const s of [socket, upstream]) {
      open.add(s);
      s.on("error", () => undefined);
      s.on("close", () => open.delete(s));
    }
    socket.pipe(upstream).pipe(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      cut = true;
      for (const s of open) s.resetAndDestroy();
    },
    close: () => server.close(),
  };
}
let cutter: Awaited<ReturnType<typeof cuttableLink>>;

beforeAll(async () => {
  await ensureBuilt();
  hub = await startIotHubEmulator({ mqttPort: 0, httpsPort: 0 });
  cutter = await cuttableLink(hub.mqttPort);
}, 300_000);

afterAll(async () => {
  await killAll();
  cutter?.close();
  await hub?.close();
});

it("IoT Hub unreachable for good (connection reset, reconnects reset): it stops with exit code 5 by itself, nothing left open", async () => {
  const cs = (await hub!.createDevice("E2E-Hub-Lost-Dev")).replace(`:${hub!.mqttPort}`, `:${cutter.port}`);
  expect(cs).toContain(`GatewayHostName=127.0.0.1:${cutter.port}`);
  const agent = cli(
    [
      "device",
      "--connection-string",
      cs,
      "--ca-file",
      hub!.caPath,
      "--echo",
      "--relay-endpoint",
      "http://127.0.0.1:1",
      "--relay-hub",
      "streams",
      "--allow-insecure-relay",
      "--verbose",
    ],
    { IOTHUB_DEVICE_CONNECTION_STRING: "" },
  );
  await agent.waitFor(/serving echo/, "the agent");
  // The network drops the agent's MQTT connection with a reset, and every reconnect attempt too.
  cutter.cut();
  const exit = await withDeadline(agent.exit, 60_000, "the agent to stop").catch((e: Error) => {
    throw new Error(`${e.message}; stderr: ${agent.stderr()}`);
  });
  expect({ ...exit, stderr: agent.stderr() }).toMatchObject({ code: EXIT.deviceUnavailable, signal: null });
  expect(agent.stderr()).toMatch(/iot hub: disconnected \(.+\) and the SDK gave up reconnecting; stopping/);
  expect(agent.stderr()).toMatch(/^devicestream: debug: nothing left open$/m);
});
