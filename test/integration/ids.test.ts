/**
 * Every IoT Hub-legal special character in a device and a module ID, end to end on the local host
 * under real-host routing (decode-before-route, the local host's default): the SDK opens a stream
 * to the ID through the IoT Hub emulator and the relay, lists it, shows it and closes it; the CLI's
 * commands do the same once. The IDs are the ones that percent-encoded paths could not carry.
 */
import { PassThrough } from "node:stream";
import type { Client, ModuleClient } from "azure-iot-device";
import { ID_SPECIAL_CHARACTERS, encodeIdSegment } from "../../common/ids";
import { runCli } from "../../client/cli/program";
import { EXIT } from "../../client/cli/exitCodes";
import type { StreamsClient } from "../../client/sdk/service";
import { withDeadline } from "../helpers/events";
import { echo, roundTrip } from "../sdk/helpers";
import { useStack } from "../sdk/stack";

jest.setTimeout(120_000);

const stack = useStack();

/** One ID per special character, then the IDs that change a path when percent-encoded or decoded twice. */
const IDS = [
  ...[...ID_SPECIAL_CHARACTERS].map((c) => `id${c}x`),
  ".",
  "..",
  "%",
  "#",
  "?",
  ";",
  "%2F",
  "%2e%2e",
  `-${ID_SPECIAL_CHARACTERS}`,
];

/** [title, id]: jest's %p formats through String.replace, where `$'` would splice in text. */
const CASES = IDS.map((id) => [JSON.stringify(id), id] as const);

function serveEcho(client: Client | ModuleClient) {
  stack()
    .listen(client, { onRequest: () => ({ accept: true }) })
    .on("stream", (stream) => stream.on("channel", echo));
}

/** Opens, echoes, lists, shows and closes one stream, checking the ID at every step. */
async function lifecycle(service: StreamsClient, deviceId: string, moduleId?: string) {
  const stream = await service.openStream(deviceId, "echo", moduleId !== undefined ? { moduleId } : {});
  expect({ deviceId: stream.deviceId, moduleId: stream.moduleId }).toEqual({ deviceId, moduleId });
  const channel = await stream.openChannel();
  expect((await roundTrip(channel, Buffer.from(`hello ${deviceId}`), 1024)).toString()).toBe(
    `hello ${deviceId}`,
  );

  const listed: string[] = [];
  for await (const s of service.listStreams(deviceId, { state: "Established" })) listed.push(s.streamId);
  expect(listed).toContain(stream.streamId);
  expect(await service.getStream(deviceId, stream.streamId)).toMatchObject({
    streamId: stream.streamId,
    deviceId,
    ...(moduleId !== undefined ? { moduleId } : {}),
    state: "Established",
  });

  await service.closeStream(deviceId, stream.streamId);
  await withDeadline(stream.whenClosed(), 15_000, "the stream to end after DELETE");
  expect(await service.getStream(deviceId, stream.streamId)).toMatchObject({
    state: "Closed",
    closedBy: "api",
  });
}

describe("IDs with every legal character, under real-host routing", () => {
  it("the stack's host decodes before routing: an escaped separator routes nowhere", async () => {
    const res = await fetch(`${stack().host.url}/api/devices/a%2Fb/streams?api-version=2026-12-01`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("");
  });

  it.each(CASES)("device ID %s: open, list, show and close through the SDK", async (_title, deviceId) => {
    const s = stack();
    serveEcho(await s.device(deviceId));
    await lifecycle(s.client(), deviceId);
  });

  it.each(CASES)("module ID %s: open, list, show and close through the SDK", async (_title, moduleId) => {
    const s = stack();
    const deviceId = `gw${moduleId}`;
    serveEcho(await s.module(deviceId, moduleId));
    await lifecycle(s.client(), deviceId, moduleId);
  });

  it("the CLI's streams commands carry such an ID too", async () => {
    const s = stack();
    const deviceId = `cli${ID_SPECIAL_CHARACTERS}`;
    serveEcho(await s.device(deviceId));
    const cli = (args: string[]) => {
      const stdin = new PassThrough();
      const stdout = new PassThrough();
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      stdout.on("data", (b: Buffer) => out.push(b));
      const code = runCli(args, {
        stdin,
        stdout,
        stderr: new PassThrough().on("data", (b: Buffer) => err.push(b)),
        env: { DEVICESTREAM_CONNECTION_STRING: s.connectionString },
        cwd: process.cwd(),
        signal: new AbortController().signal,
      });
      const text = () => Buffer.concat(out).toString();
      /** Resolves once stdout holds exactly `expected`. */
      const printed = (expected: string) =>
        new Promise<void>((resolve) => {
          const check = () => text() === expected && resolve();
          stdout.on("data", check);
          check();
        });
      return { code, stdin, stdout: text, printed, stderr: () => Buffer.concat(err).toString() };
    };
    const done = async (r: ReturnType<typeof cli>) => ({ code: await r.code, stderr: r.stderr() });

    // connect holds its stream open while stdin is open; its echo says the stream is up.
    const connect = cli(["connect", deviceId, "echo"]);
    connect.stdin.write("ping\n");
    await withDeadline(connect.printed("ping\n"), 15_000, "connect's echo");

    const list = cli(["streams", "list", deviceId, "--state", "Established", "--json"]);
    expect(await done(list)).toEqual({ code: EXIT.ok, stderr: "" });
    const rows = JSON.parse(list.stdout()) as Array<{ streamId: string; deviceId: string }>;
    expect(rows).toEqual([expect.objectContaining({ deviceId })]);
    const streamId = rows[0]!.streamId;

    // An ID that starts with '-' follows '--', as any argument that looks like an option.
    const dashed = `-${ID_SPECIAL_CHARACTERS}`;
    const listDashed = cli(["streams", "list", "--json", "--", dashed]);
    expect(await done(listDashed)).toEqual({ code: EXIT.ok, stderr: "" });
    for (const row of JSON.parse(listDashed.stdout()) as Array<{ deviceId: string }>) {
      expect(row.deviceId).toBe(dashed);
    }

    const show = cli(["streams", "show", deviceId, streamId, "--json"]);
    expect(await done(show)).toEqual({ code: EXIT.ok, stderr: "" });
    expect(JSON.parse(show.stdout())).toMatchObject({ streamId, deviceId, state: "Established" });

    const close = cli(["streams", "close", deviceId, streamId]);
    expect(await done(close)).toEqual({ code: EXIT.ok, stderr: "" });
    expect(close.stdout()).toBe(`closed ${streamId}\n`);
    // Closed from elsewhere, connect's stream ended under it: the documented "stream ended" exit.
    expect(await withDeadline(connect.code, 15_000, "connect to end once its stream is closed")).toBe(
      EXIT.streamFailed,
    );
    expect(connect.stderr()).toMatch(/closed/i);
    expect(await s.client().getStream(deviceId, streamId)).toMatchObject({
      state: "Closed",
      closedBy: "api",
    });
  });

  it("the segment the SDK sends is the one docs/decisions.md shows", () => {
    expect(encodeIdSegment("Demo-Device-01")).toBe("RGVtby1EZXZpY2UtMDE");
  });
});
