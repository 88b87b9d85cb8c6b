/**
 * The `devicestream` CLI run in process (runCli with piped stdio) against the in-process stack:
 * the agent (`device`) on the official device SDK, and every service-side command.
 */
import { createHash } from "node:crypto";
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT } from "../../client/cli/exitCodes";
import { Recorder, withDeadline } from "../helpers/events";
import { echo } from "../sdk/helpers";
import { type ConnectProxy, startConnectProxy } from "../helpers/connectProxy";
import { useStack } from "../sdk/stack";
import { type Run, cliRunner } from "../helpers/cli";

const stack = useStack();
const run = cliRunner(() => ({ DEVICESTREAM_CONNECTION_STRING: stack().connectionString }));

/** A TCP target: answers each connection, after the client's FIN, with the sha256 of what it sent. */
async function hashServer(): Promise<{ server: Server; port: number; connections: Recorder<Socket> }> {
  const connections = new Recorder<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections.push(socket);
    const hash = createHash("sha256");
    socket.on("data", (b) => hash.update(b));
    socket.on("end", () => socket.end(hash.digest("hex")));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, connections };
}

/** Sends `payload`, half-closes, reads the reply to the end. */
function tcpExchange(port: number, payload: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const parts: Buffer[] = [];
    socket.on("data", (b: Buffer) => parts.push(b));
    socket.on("end", () => resolve(Buffer.concat(parts).toString()));
    socket.on("error", reject);
    socket.end(payload);
  });
}

/** The agent flags that point it at this stack's IoT Hub CA and its (plain ws://) relay. */
function localAgentFlags(s: ReturnType<typeof stack>): string[] {
  return [
    "--ca-file",
    s.hub.caPath,
    "--relay-endpoint",
    `http://${s.relayHost}`,
    "--relay-hub",
    "streams",
    "--allow-insecure-relay",
  ];
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A configuration file the CLI accepts: 0600, in a directory of its own (mkdtemp: 0700). */
async function configFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "devicestream-config-"));
  const file = join(dir, "config.env");
  await writeFile(file, `${text}\n`, { mode: 0o600 });
  return file;
}

describe("devicestream CLI", () => {
  let target: Awaited<ReturnType<typeof hashServer>>;
  let other: Awaited<ReturnType<typeof hashServer>>;
  let agent: Run;
  let closedPort: number;

  beforeAll(async () => {
    const s = stack();
    target = await hashServer();
    other = await hashServer();
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const cs = await s.hub.createDevice("Cli-Agent");
    agent = run(
      [
        "device",
        "--connection-string",
        cs,
        "--ca-file",
        s.hub.caPath,
        "--echo",
        "--allow",
        `web=127.0.0.1:${target.port}`,
        "--allow",
        `dead=127.0.0.1:${closedPort}`,
        "--relay-endpoint",
        `http://${s.relayHost}`,
        "--relay-hub",
        "streams",
        "--allow-insecure-relay",
        "--keepalive",
        "30",
      ],
      { DEVICESTREAM_CONNECTION_STRING: "" },
    );
    await withDeadline(agent.ready, 20_000, "agent ready");
  }, 30_000);

  afterAll(async () => {
    agent?.stop();
    expect({ code: await agent.code, stderr: agent.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    target?.server.close();
    other?.server.close();
  });

  it("echo --bytes verifies the echo and prints throughput and RTT (human and --json)", async () => {
    const human = run(["echo", "Cli-Agent", "--bytes", "256k"]);
    expect({ code: await human.code, stderr: human.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    expect(human.stdout()).toMatch(/^verified: 262144 bytes echoed/m);
    expect(human.stdout()).toMatch(/throughput [\d.]+ MB\/s/);
    expect(human.stdout()).toMatch(/rtt p50 [\d.]+ ms/);

    const json = run(["echo", "Cli-Agent", "--bytes", "1M", "--json"]);
    expect({ code: await json.code, stderr: json.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    const result = JSON.parse(json.stdout());
    expect(result).toMatchObject({ bytes: 1048576, verified: true, rttMs: { samples: 20 } });
  });

  it("the agent runs as a module identity while the device identity is in use elsewhere", async () => {
    const s = stack();
    const app = await s.device("Cli-Modular");
    const moduleCs = await s.hub.createModule("Cli-Modular", "streams");
    // Configured by its configuration file alone, as `dev add-device` writes one.
    const config = await configFile(
      [
        `IOTHUB_DEVICE_CONNECTION_STRING=${moduleCs}`,
        `IOTHUB_DEVICE_CA_FILE=${s.hub.caPath}`,
        `DEVICESTREAM_RELAY_ENDPOINT=http://${s.relayHost}`,
        "DEVICESTREAM_RELAY_HUB=streams",
        "DEVICESTREAM_ALLOW_INSECURE_RELAY=1",
      ].join("\n"),
    );
    const moduleAgent = run(["device", "--echo", "--config", config], { DEVICESTREAM_CONNECTION_STRING: "" });
    await withDeadline(moduleAgent.ready, 20_000, "module agent ready");
    const e = run(["echo", "Cli-Modular", "--module", "streams", "--bytes", "100k", "--json"]);
    expect({ code: await e.code, stderr: e.stderr() }).toEqual({ code: EXIT.ok, stderr: expect.anything() });
    expect(JSON.parse(e.stdout())).toMatchObject({ bytes: 102400, verified: true });
    moduleAgent.stop();
    expect(await moduleAgent.code).toBe(EXIT.ok);
    await app.close();
  });

  it("forward: connections share one stream as channels, half-close both ways, re-open after close", async () => {
    const fwd = run(["forward", "Cli-Agent", "web", "--listen", "0"]);
    const { address } = await withDeadline(fwd.ready, 15_000, "forward ready");
    const payloads = [
      Buffer.alloc(100_000, 1),
      Buffer.alloc(7, 2),
      Buffer.alloc(0),
      Buffer.alloc(333_333, 3),
    ];
    const replies = await withDeadline(
      Promise.all(payloads.map((p) => tcpExchange(address!.port, p))),
      15_000,
      "exchanges",
    );
    expect(replies).toEqual(payloads.map(sha));
    const listed = run(["streams", "list", "Cli-Agent", "--json", "--state", "Established"]);
    expect({ code: await listed.code, stderr: listed.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    const established = JSON.parse(listed.stdout()) as Array<{ streamId: string; name: string }>;
    expect(established.filter((x) => x.name === "web")).toHaveLength(1);

    // Close the shared stream from outside: once the forwarder sees it end, the next connection opens a new one.
    const shared = established.find((x) => x.name === "web")!.streamId;
    const closing = run(["streams", "close", "Cli-Agent", shared]);
    expect({ code: await closing.code, stderr: closing.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    await fwd.lines.waitFor(
      (l) => l.some((x) => x.includes(`stream ${shared} closed`)),
      "forwarder sees the close",
    );
    expect(await tcpExchange(address!.port, Buffer.from("again"))).toBe(sha(Buffer.from("again")));
    const opened = fwd.lines.items.filter((x) => / open$/.test(x));
    expect(opened).toHaveLength(2);
    fwd.stop();
    expect({ code: await fwd.code, stderr: fwd.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
  });

  it("forward --stream-per-connection opens one stream per connection and closes it after", async () => {
    const fwd = run(["forward", "Cli-Agent", "web", "--listen", "127.0.0.1:0", "--stream-per-connection"]);
    const { address } = await withDeadline(fwd.ready, 15_000, "forward ready");
    const payloads = [Buffer.alloc(5000, 4), Buffer.alloc(70_000, 5)];
    expect(await Promise.all(payloads.map((p) => tcpExchange(address!.port, p)))).toEqual(payloads.map(sha));
    await fwd.lines.waitFor(
      (l) => l.filter((x) => / closed: Normal/.test(x)).length === 2,
      "both streams closed",
    );
    expect(fwd.lines.items.filter((x) => / open$/.test(x))).toHaveLength(2);
    fwd.stop();
    expect({ code: await fwd.code, stderr: fwd.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
  });

  it("a channel only ever reaches its stream's mapping, whatever its label says", async () => {
    const stream = await stack().client().openStream("Cli-Agent", "web");
    const before = other.connections.items.length;
    const channel = await stream.openChannel(`127.0.0.1:${other.port}`);
    const reply = await new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      channel.on("data", (b: Buffer) => parts.push(b));
      channel.on("end", () => resolve(Buffer.concat(parts).toString()));
      channel.on("error", reject);
      channel.end("x");
    });
    expect(reply).toBe(sha(Buffer.from("x")));
    expect(other.connections.items.length).toBe(before);
    await stream.close();
  });

  it("a refused target resets the channel with TargetError", async () => {
    const stream = await stack().client().openStream("Cli-Agent", "dead");
    const channel = await stream.openChannel();
    channel.resume();
    const err = await withDeadline(
      new Promise<Error>((resolve) => channel.once("error", resolve)),
      15_000,
      "channel reset",
    );
    expect(err).toMatchObject({
      name: "TunnelError",
      code: "TargetError",
      message: expect.stringMatching(/ECONNREFUSED/),
    });
    await stream.close();
  });

  it("an unknown stream name is rejected with the device's reason and exit code 6", async () => {
    const r = run(["connect", "Cli-Agent", "nope"]);
    expect(await r.code).toBe(EXIT.rejected);
    expect(r.stderr()).toMatch(/stream name 'nope' is not served here/);
    // Which names the device does serve is not the caller's to learn.
    expect(r.stderr()).not.toMatch(/echo, web|dead/);
  });

  it("connect joins stdio to a channel; device IDs keep their case", async () => {
    const s = stack();
    s.listen(await s.device("Mixed.Case-Dev"), { onRequest: () => ({ accept: true }) }).on("stream", (st) =>
      st.on("channel", echo),
    );
    s.listen(await s.device("mixed.case-dev"), {
      onRequest: () => ({ accept: false, reason: "wrong device" }),
    });
    const r = run(["connect", "Mixed.Case-Dev", "ssh"]);
    r.stdin.end("SSH-2.0-test\r\n");
    expect(await withDeadline(r.code, 15_000, "connect exits")).toBe(EXIT.ok);
    expect(r.stdout()).toBe("SSH-2.0-test\r\n");
  });

  it("SIGINT / SIGTERM end an open connect (0, its stream closed) and echo --bytes (7, no result)", async () => {
    const from = agent.lines.items.length;
    const since = (l: readonly string[], pattern: RegExp) => l.slice(from).filter((x) => pattern.test(x));
    // stdin stays open: without the interrupt, connect would run on.
    const connect = run(["connect", "Cli-Agent", "echo"]);
    connect.stdin.write("before the interrupt\n");
    await connect.output.waitFor((o) => o.join("") === "before the interrupt\n", "the echo");
    connect.stop();
    expect({
      code: await withDeadline(connect.code, 15_000, "connect exits"),
      err: connect.stderr(),
    }).toEqual({
      code: EXIT.ok,
      err: "",
    });
    await agent.lines.waitFor(
      (l) => since(l, /closed: Normal \(interrupted\)/).length === 1,
      "its stream closed",
    );

    const measure = run(["echo", "Cli-Agent", "--bytes", "1G"]);
    await agent.lines.waitFor((l) => since(l, / 'echo' open$/).length === 2, "the measurement's stream");
    measure.stop();
    expect(await withDeadline(measure.code, 15_000, "echo exits")).toBe(EXIT.streamFailed);
    expect(measure.stderr()).toMatch(/^devicestream: interrupted before the echo completed/);
    expect(measure.stdout()).toBe("");
  });

  it("streams show, endpoints and sas", async () => {
    const stream = await stack().client().openStream("Cli-Agent", "echo");
    const show = run(["streams", "show", "Cli-Agent", stream.streamId, "--json"]);
    expect({ code: await show.code, stderr: show.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    expect(JSON.parse(show.stdout())).toMatchObject({ streamId: stream.streamId, state: "Established" });
    await stream.close();

    const endpoints = run(["endpoints"]);
    expect({ code: await endpoints.code, stderr: endpoints.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    expect(endpoints.stdout()).toMatch(/^relay endpoint +http:\/\/127\.0\.0\.1:\d+$/m);
    expect(endpoints.stdout()).toMatch(/^relay hub +streams$/m);
    // The agent's flags, exactly as `device` takes them.
    expect(endpoints.stdout()).toContain(`--relay-endpoint http://${stack().relayHost} --relay-hub streams`);

    const sas = run(["sas", "--ttl", "10m"]);
    expect({ code: await sas.code, stderr: sas.stderr() }).toEqual({
      code: EXIT.ok,
      stderr: expect.anything(),
    });
    const token = sas.stdout().trim();
    expect(token).toMatch(/^SharedAccessSignature sr=127\.0\.0\.1&sig=[^&]+&se=\d+&skn=service$/);
    const res = await fetch(`${stack().host.url}/api/endpoints?api-version=2026-12-01`, {
      headers: { authorization: token },
    });
    expect(res.status).toBe(200);
  });

  it.each([
    [
      ["streams", "list", "X"],
      { DEVICESTREAM_CONNECTION_STRING: "" },
      EXIT.usage,
      /DEVICESTREAM_CONNECTION_STRING/,
    ],
    [["forward", "X", "ssh", "--listen", "abc"], {}, EXIT.usage, /0 to 65535/],
    [
      ["device", "--echo"],
      { IOTHUB_DEVICE_CONNECTION_STRING: "" },
      EXIT.usage,
      /IOTHUB_DEVICE_CONNECTION_STRING/,
    ],
    [["device"], {}, EXIT.usage, /nothing to serve/],
    [["connect", "Never-Registered", "ssh"], {}, EXIT.notFound, /not registered/],
    [["bogus"], {}, EXIT.usage, /unknown command/],
  ])("%j exits with the documented code", async (args, env, code, message) => {
    const r = run(args, env);
    expect(await r.code).toBe(code);
    expect(r.stderr()).toMatch(message);
  });

  it("reads the checkout's .devstack/env, never one in the current directory or a parent", async () => {
    const root = await mkdtemp(join(tmpdir(), "devicestream-cwd-"));
    try {
      await mkdir(join(root, ".devstack"), { mode: 0o700 });
      await mkdir(join(root, "sub", "dir"), { recursive: true });
      const file = join(root, ".devstack", "env");
      await writeFile(
        file,
        `# written by npm start\nDEVICESTREAM_CONNECTION_STRING=${stack().connectionString}\n`,
        { mode: 0o600 },
      );
      const cwd = join(root, "sub", "dir");
      const unset = { DEVICESTREAM_CONNECTION_STRING: "" };
      const found = run(["endpoints", "--json"], unset, cwd);
      expect(await found.code).toBe(EXIT.usage);
      expect(found.stderr()).toMatch(/no control-plane credentials/);

      const checkout = run(["endpoints", "--json"], unset, cwd, { checkoutConfig: file });
      expect({ code: await checkout.code, stderr: checkout.stderr() }).toEqual({ code: EXIT.ok, stderr: "" });
      expect(JSON.parse(checkout.stdout())).toMatchObject({ iotHub: { methodName: "deviceStream" } });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("the agent takes no trust from the environment: it warns, and asks for the relay flags", async () => {
    const s = stack();
    const r = run(["device", "--echo"], {
      DEVICESTREAM_CONNECTION_STRING: "",
      IOTHUB_DEVICE_CONNECTION_STRING: await s.hub.createDevice("Cli-Env-Trust"),
      IOTHUB_DEVICE_CA_FILE: s.hub.caPath,
      DEVICESTREAM_RELAY_ENDPOINT: `http://${s.relayHost}`,
      DEVICESTREAM_RELAY_HUB: "streams",
      DEVICESTREAM_ALLOW_INSECURE_RELAY: "1",
    });
    expect(await r.code).toBe(EXIT.usage);
    expect(r.stderr()).toMatch(
      /ignoring DEVICESTREAM_RELAY_ENDPOINT, DEVICESTREAM_RELAY_HUB, DEVICESTREAM_ALLOW_INSECURE_RELAY, IOTHUB_DEVICE_CA_FILE in the environment/,
    );
    expect(r.stderr()).toMatch(
      /the agent needs the one relay it may join: --relay-endpoint URL --relay-hub HUB/,
    );
  });

  describe("text a device or a peer chose is printed with control characters escaped", () => {
    // An OSC 52 clipboard write, a CSI "clear screen", a C1 CSI and a forged second line.
    const HOSTILE = "\x1b]52;c;SGVsbG8=\x07\x1b[2J\u009b31m\nforged";
    const ESCAPED = "\\u001b]52;c;SGVsbG8=\\u0007\\u001b[2J\\u009b31m\\u000aforged";
    // eslint-disable-next-line no-control-regex -- the characters that must never reach the terminal
    const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

    it("a rejection reason: the error, streams list and streams show; --json stays exact JSON", async () => {
      const s = stack();
      s.listen(await s.device("Cli-Hostile-Reject"), {
        onRequest: () => ({ accept: false, reason: HOSTILE }),
      });
      const r = run(["connect", "Cli-Hostile-Reject", "ssh"]);
      expect(await r.code).toBe(EXIT.rejected);
      expect(r.stderr()).toContain(ESCAPED);
      expect(r.stderr().replace(/\n$/, "")).not.toMatch(raw);

      const list = run(["streams", "list", "Cli-Hostile-Reject"]);
      expect(await list.code).toBe(EXIT.ok);
      expect(list.stdout()).toContain(ESCAPED);
      expect(list.stdout().replace(/\n/g, "")).not.toMatch(raw);
      const json = run(["streams", "list", "Cli-Hostile-Reject", "--json"]);
      expect(await json.code).toBe(EXIT.ok);
      expect(json.stdout().replace(/\n/g, "")).not.toMatch(raw);
      const [record] = JSON.parse(json.stdout()) as { streamId: string; closeReason: string }[];
      expect(record!.closeReason).toContain(HOSTILE);

      const show = run(["streams", "show", "Cli-Hostile-Reject", record!.streamId]);
      expect(await show.code).toBe(EXIT.ok);
      expect(show.stdout()).toContain(ESCAPED);
      expect(show.stdout().replace(/\n/g, "")).not.toMatch(raw);
    });

    it("a device's CLOSE and RESET messages in forward's log and connect's error", async () => {
      const s = stack();
      s.listen(await s.device("Cli-Hostile-Close"), { onRequest: () => ({ accept: true }) }).on(
        "stream",
        (st) =>
          st.on("channel", (c) => {
            if (st.name === "reset") c.abort("TargetError", HOSTILE);
            else void st.close("Normal", HOSTILE);
          }),
      );
      const connect = run(["connect", "Cli-Hostile-Close", "reset"]);
      expect(await connect.code).toBe(EXIT.streamFailed);
      expect(connect.stderr()).toContain(ESCAPED);
      expect(connect.stderr().replace(/\n$/, "")).not.toMatch(raw);

      const fwd = run(["forward", "Cli-Hostile-Close", "web", "--listen", "0"]);
      const { address } = await withDeadline(fwd.ready, 15_000, "forward ready");
      await tcpExchange(address!.port, Buffer.from("x")).catch(() => "");
      await fwd.lines.waitFor((l) => l.some((x) => / closed: Normal/.test(x)), "the device's CLOSE");
      fwd.stop();
      expect(await fwd.code).toBe(EXIT.ok);
      expect(fwd.stderr()).toContain(ESCAPED);
      expect(fwd.stderr().replace(/\n/g, "")).not.toMatch(raw);
    });

    it("the service's CLOSE message in the agent's log", async () => {
      const from = agent.lines.items.length;
      const stream = await stack().client().openStream("Cli-Agent", "echo");
      await stream.close("Normal", HOSTILE);
      await agent.lines.waitFor(
        (l) => l.slice(from).some((x) => x.includes(`stream ${stream.streamId} closed`)),
        "the agent logs the close",
      );
      const line = agent.lines.items.slice(from).find((x) => x.includes(`stream ${stream.streamId} closed`))!;
      expect(line).toContain(ESCAPED);
      expect(line).not.toMatch(raw);
    });
  });

  it("an offline device exits 5 and says what to do", async () => {
    await stack().hub.createDevice("Cli-Offline");
    const r = run(["connect", "Cli-Offline", "ssh"]);
    expect(await r.code).toBe(EXIT.deviceUnavailable);
    expect(r.stderr()).toMatch(/devicestream device/);
  });

  it("a wrong key exits 3", async () => {
    const bad = stack().connectionString.replace(
      /SharedAccessKey=[^;]+/,
      `SharedAccessKey=${Buffer.alloc(32, 9).toString("base64")}`,
    );
    const r = run(["endpoints", "--connection-string", bad]);
    expect(await r.code).toBe(EXIT.auth);
  });

  it("an agent whose key IoT Hub refuses exits 3 and says whose refusal it is", async () => {
    const s = stack();
    const good = await s.hub.createDevice("Cli-Agent-Bad-Key");
    const refused = run(
      [
        "device",
        "--connection-string",
        good.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 9).toString("base64")}`),
        "--echo",
        ...localAgentFlags(s),
      ],
      { DEVICESTREAM_CONNECTION_STRING: "" },
    );
    expect(await refused.code).toBe(EXIT.auth);
    expect(refused.stderr()).toMatch(/^devicestream: iot hub: .*Not authorized/m);
  });

  describe("device --transport mqtt-ws through HTTPS_PROXY", () => {
    let proxy: ConnectProxy;

    beforeAll(async () => {
      // MqttWs always dials <GatewayHostName>:443: the proxy takes localhost:443 to the hub's HTTPS port.
      proxy = await startConnectProxy({
        "localhost:443": { host: "127.0.0.1", port: stack().hub.httpsPort },
      });
    });
    afterAll(() => proxy?.close());

    /** Runs an mqtt-ws agent with `env`, echoes 300 KB through it, stops it; returns the new CONNECTs. */
    async function echoThroughWsAgent(deviceId: string, env: Record<string, string>): Promise<string[]> {
      const s = stack();
      const cs = (await s.hub.createDevice(deviceId)).replace(
        /GatewayHostName=[^;]+/,
        "GatewayHostName=localhost",
      );
      const before = proxy.targets.items.length;
      const wsAgent = run(
        ["device", "--transport", "mqtt-ws", "--connection-string", cs, "--echo", ...localAgentFlags(s)],
        { DEVICESTREAM_CONNECTION_STRING: "", ...env },
      );
      await withDeadline(wsAgent.ready, 20_000, "mqtt-ws agent ready");
      const e = run(["echo", deviceId, "--bytes", "300k", "--json"]);
      expect({ code: await e.code, stderr: e.stderr() }).toEqual({
        code: EXIT.ok,
        stderr: expect.anything(),
      });
      // echo sends random bytes and compares the sha256 of what came back.
      expect(JSON.parse(e.stdout())).toMatchObject({ bytes: 307200, verified: true });
      wsAgent.stop();
      expect({ code: await wsAgent.code, stderr: wsAgent.stderr() }).toEqual({
        code: EXIT.ok,
        stderr: expect.stringContaining("serving echo"),
      });
      return proxy.targets.items.slice(before);
    }

    it("IoT Hub (localhost:443) and the ws:// relay are both tunnelled by the proxy", async () => {
      expect(await echoThroughWsAgent("Cli-Ws", { HTTPS_PROXY: proxy.url })).toEqual([
        "localhost:443",
        stack().relayHost,
      ]);
    });

    it("NO_PROXY exempts the relay's host, and only it", async () => {
      const relayHostname = new URL(`ws://${stack().relayHost}`).hostname;
      expect(
        await echoThroughWsAgent("Cli-Ws-NoProxy", { https_proxy: proxy.url, NO_PROXY: relayHostname }),
      ).toEqual(["localhost:443"]);
    });
  });
});
