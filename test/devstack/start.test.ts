import { EventEmitter } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TableClient, TableServiceClient } from "@azure/data-tables";
import type { RouteTable } from "../../shared/http/routeTypes";
import { DEFAULT_OPTIONS } from "../../devstack/args";
import { runCli, runDevStack, type DevStackDeps } from "../../devstack/start";
import { deferred, Recorder, withDeadline } from "../helpers/events";
import { recordingLogger } from "../helpers/logger";
import { EPHEMERAL_STACK_PORTS } from "../helpers/stackArgs";
import WebSocket from "ws";

jest.setTimeout(15_000);

/** A stand-in control plane that proves it received the local storage settings. */
function sampleTable(
  env: () => NodeJS.ProcessEnv,
  gate?: { entered: () => void; release: Promise<void> },
): RouteTable {
  const connectionString = () => env().TABLES_CONNECTION_STRING ?? "";
  return {
    http: [
      {
        name: "createTable",
        methods: ["POST"],
        route: "tables/{name}",
        handler: async (req) => {
          await TableClient.fromConnectionString(connectionString(), req.params.name!, {
            allowInsecureConnection: true,
          }).createTable();
          return { status: 201 };
        },
      },
      {
        name: "hold",
        methods: ["GET"],
        route: "hold",
        handler: async () => {
          gate?.entered();
          await gate?.release;
          return { status: 204 };
        },
      },
    ],
    timers: [],
  };
}

async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

/** One message through the demo page's WebSocket echo. */
async function echoOnce(webUrl: string, message: string): Promise<string> {
  const socket = new WebSocket(new URL("/echo", webUrl.replace(/^http/, "ws")));
  try {
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    const answer = new Promise<string>((resolve) =>
      socket.once("message", (data: Buffer) => resolve(data.toString())),
    );
    socket.send(message);
    return await answer;
  } finally {
    socket.close();
  }
}

describe("the local stack", () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "devstack-"));
  });
  afterEach(() => rm(stateDir, { recursive: true, force: true }));

  const options = () => ({
    ...DEFAULT_OPTIONS,
    port: 0,
    tablePort: 0,
    webPubSubPort: 0,
    mqttPort: 0,
    iotHubPort: 0,
    stateDir,
  });
  let log = recordingLogger();
  beforeEach(() => (log = recordingLogger()));
  const deps = (gate?: Parameters<typeof sampleTable>[1]): DevStackDeps => ({
    createRouteTable: (env) => sampleTable(env, gate),
    env: {},
    logger: log.logger,
  });

  it("runs the route table on the local host against its own Azurite", async () => {
    const stack = await runDevStack(options(), deps());
    try {
      expect(stack.endpoints.api).toBe(`${stack.endpoints.functions}/api`);
      const res = await fetch(`${stack.endpoints.api}/tables/fromHandler`, { method: "POST" });
      expect(res.status).toBe(201);
      const service = TableServiceClient.fromConnectionString(stack.env.TABLES_CONNECTION_STRING!, {
        allowInsecureConnection: true,
      });
      const names: string[] = [];
      for await (const table of service.listTables()) names.push(table.name!);
      expect(names).toContain("fromHandler");
      expect(stack.env.TABLES_CONNECTION_STRING).toContain(stack.endpoints.tables);
      expect(stack.env.WEBPUBSUB_CONNECTION_STRING).toContain(stack.endpoints.webPubSub);
      expect(stack.env.IOTHUB_CONNECTION_STRING).toMatch(/^HostName=/);
      const envFile = await readFile(join(stateDir, "env"), "utf8");
      expect(envFile).toContain(
        `DEVICESTREAM_CONNECTION_STRING=Endpoint=http://localhost:${new URL(stack.endpoints.api).port};`,
      );
    } finally {
      await stack.close();
    }
  });

  function cli(argv: string[], cliDeps: DevStackDeps = deps()) {
    const stdout = new Recorder<string>();
    const stderr = new Recorder<string>();
    const signals = new EventEmitter();
    const exit = runCli(argv, cliDeps, { stdout: stdout.push, stderr: stderr.push, signals });
    const text = (r: Recorder<string>) => r.items.join("");
    const ready = async () => {
      await stdout.waitFor((items) => items.join("").includes("is ready"), "the ready banner");
      return /Control plane \(Functions host\)\s+(\S+)/.exec(text(stdout))![1]!;
    };
    return { exit, signals, ready, out: () => text(stdout), err: () => text(stderr) };
  }

  it("registers the demo device once, reuses it on restart, and writes DEMO_DEVICE_ID", async () => {
    const first = await runDevStack(options(), deps());
    let key: string | undefined;
    try {
      expect(first.demo).toMatchObject({ deviceId: "Demo-Device-01", reused: false });
      expect(first.clientEnv.DEMO_DEVICE_ID).toBe("Demo-Device-01");
      key = first.iotHub.connectionString("Demo-Device-01");
      expect(key).toMatch(/DeviceId=Demo-Device-01;/);
      const page = await (await fetch(first.demo!.webUrl)).text();
      const tiles = [...page.matchAll(/<img src="(tiles\/\d+\.svg)"/g)].map((m) => m[1]!);
      expect(tiles).toHaveLength(24);
      const svg = await fetch(new URL(tiles[23]!, first.demo!.webUrl));
      expect(svg.headers.get("content-type")).toBe("image/svg+xml");
      expect(page).toContain('<code id="device-id">Demo-Device-01</code>');
      // The second device: the same ID but for case, another identity, its own page.
      expect(first.demos.map((d) => [d.deviceId, d.names])).toEqual([
        ["Demo-Device-01", ["echo", "web", "ssh"]],
        ["demo-device-01", ["echo", "web"]],
      ]);
      expect(first.iotHub.connectionString("demo-device-01")).toMatch(/DeviceId=demo-device-01;/);
      const secondPage = await (await fetch(first.demos[1]!.webUrl)).text();
      expect(secondPage).toContain('<code id="device-id">demo-device-01</code>');
      expect(await echoOnce(first.demos[1]!.webUrl, "ping")).toBe("ping");
    } finally {
      await first.close();
    }
    const firstEnv = await readFile(join(stateDir, "env"), "utf8");
    const secret = /^DEVICESTREAM_GATEWAY_SECRET=([A-Za-z0-9_-]{43})$/m.exec(firstEnv)?.[1];
    expect(secret).toBeDefined();
    const second = await runDevStack(options(), deps());
    try {
      expect(second.demo).toMatchObject({ deviceId: "Demo-Device-01", reused: true });
      expect(second.demos[1]).toMatchObject({ deviceId: "demo-device-01", reused: true });
      expect(second.iotHub.connectionString("Demo-Device-01")?.split(";")[2]).toBe(key!.split(";")[2]);
      const envFile = await readFile(join(stateDir, "env"), "utf8");
      expect(envFile).toMatch(/^DEMO_DEVICE_ID=Demo-Device-01$/m);
      // A gateway started before the restart still accepts the tickets printed after it.
      expect(envFile).toContain(`DEVICESTREAM_GATEWAY_SECRET=${secret}\n`);
    } finally {
      await second.close();
    }
  });

  it("prints the endpoints and stops cleanly on SIGINT", async () => {
    const run = cli([...EPHEMERAL_STACK_PORTS, "--state-dir", stateDir, "--no-demo"]);
    const api = await run.ready();
    expect(run.out()).toMatch(/Azurite table service\s+http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1/);
    expect(run.out()).toContain("off (--no-demo)");
    expect((await fetch(`${api}/tables/beforeStop`, { method: "POST" })).status).toBe(201);
    run.signals.emit("SIGINT");
    expect(await withDeadline(run.exit, 10_000, "the CLI to exit")).toBe(0);
    expect(run.out()).toContain("SIGINT: stopping");
    await expect(fetch(`${api}/tables/afterStop`, { method: "POST" })).rejects.toThrow();
    expect(run.signals.listenerCount("SIGINT") + run.signals.listenerCount("SIGTERM")).toBe(0);
    expect(log.entries.items.some((e) => e.message === "local stack stopped")).toBe(true);
  });

  it("gives up waiting on a second signal while requests are still running", async () => {
    const entered = deferred();
    const release = deferred();
    const run = cli(
      [...EPHEMERAL_STACK_PORTS, "--state-dir", stateDir],
      deps({ entered: () => entered.resolve(), release: release.promise }),
    );
    const api = await run.ready();
    const held = fetch(`${api}/hold`);
    await withDeadline(entered.promise, 10_000, "the held request");
    run.signals.emit("SIGTERM");
    await new Promise<void>((resolve) => setImmediate(resolve));
    run.signals.emit("SIGINT");
    expect(await withDeadline(run.exit, 10_000, "the CLI to exit")).toBe(130);
    expect(run.err()).toContain("without waiting");
    // Let the held request finish so the stack still closes behind the test.
    release.resolve();
    expect((await held).status).toBe(204);
    await log.entries.waitFor(
      (all) => all.some((e) => e.message === "local stack stopped"),
      "the stack to stop",
    );
  });

  it.each([
    ["--port", "functions host"],
    ["--table-port", "Azurite table service"],
    ["--webpubsub-port", "Web PubSub emulator"],
    ["--iothub-port", "IoT Hub emulator"],
  ])("names a port taken for %s, says how to change it, and exits 1", async (flag, service) => {
    const { port, server } = await occupiedPort();
    try {
      const argv = [...EPHEMERAL_STACK_PORTS, "--state-dir", stateDir, flag, String(port)];
      const run = cli(argv);
      expect(await withDeadline(run.exit, 10_000, "the CLI to exit")).toBe(1);
      expect(run.err()).toContain(`port ${port} on 127.0.0.1 is already in use (${service})`);
      expect(run.err()).toMatch(new RegExp(`npm start -- .*${flag}.* <n>`));
    } finally {
      server.close();
    }
  });

  it("reports a control plane that fails to build and exits 1", async () => {
    const run = cli([...EPHEMERAL_STACK_PORTS, "--state-dir", stateDir], {
      createRouteTable: () => {
        throw new Error("AzureWebJobsStorage: invalid");
      },
      logger: recordingLogger().logger,
    });
    expect(await withDeadline(run.exit, 10_000, "the CLI to exit")).toBe(1);
    expect(run.err()).toContain("devstack: AzureWebJobsStorage: invalid");
  });

  it("refuses bad arguments with the usage and exit code 2, and prints help", async () => {
    const bad = cli(["--port", "x"]);
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toContain("--port must be a port number");
    expect(bad.err()).toContain("Usage: npm start");
    const help = cli(["--help"]);
    expect(await help.exit).toBe(0);
    expect(help.out()).toContain("--no-demo");
  });
});
