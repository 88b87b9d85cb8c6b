/**
 * `devicestream`: a thin CLI over the SDKs (docs/cli.md). Everything it touches (stdio, environment,
 * working directory, shutdown signal) is injected, so tests run it in process.
 */
import type { Readable, Writable } from "node:stream";
import { Command, CommanderError, Option } from "commander";
import { escapeControl, safeJson } from "../../common/text";
import { MAX_SAS_TTL_SECONDS, mintSasToken } from "../../common/sas";
// Only light modules load at start; each command loads its SDK when it runs (see `load` below),
// so `--help` and `sas` never load the relay, the IoT device SDK or @azure/identity.
import type {
  DeviceStream,
  StreamInfo,
  StreamsClient,
  StreamsClientOptions,
  TunnelTuning,
} from "../sdk/service";
import { parseConnectionString } from "../sdk/service/connectionString";
import { StreamsError } from "../sdk/service/errors";
import {
  UsageError,
  collectAllows,
  parseBytes,
  parseListen,
  parsePositiveInt,
  parseRelayEndpoint,
  parseRelayHub,
  parseTransport,
  parseTunnelKeepalive,
  parseTtl,
} from "./args";
import {
  type Settings,
  agentSettings,
  checkEntraEndpoint,
  ignoredTrustSettings,
  requireConnectionString,
  resolveControlPlane,
  settings,
} from "./config";
import { EXIT, exitCodeFor } from "./exitCodes";

/**
 * The modules behind the commands, loaded on first use. require(), not import(): these are this
 * package's own CommonJS files, and a synchronous require keeps their types and jest's module map.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const load = {
  service: () => require("../sdk/service") as typeof import("../sdk/service"),
  agent: () => require("./agent") as typeof import("./agent"),
  deviceClient: () => require("./deviceClient") as typeof import("./deviceClient"),
  entra: () => require("./entra") as typeof import("./entra"),
  forward: () => require("./forward") as typeof import("./forward"),
  stdio: () => require("./stdio") as typeof import("./stdio"),
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** What an extension's commands get from the CLI. */
export interface CliExtensionContext {
  settings: Settings;
  out: (text: string) => void;
  err: (text: string) => void;
  /** The working directory. */
  cwd: string;
  /** The relay the agent may join, as the control plane reports it (in agent-flag form). */
  relay: () => Promise<{ endpoint: string; hub: string }>;
}

/**
 * Adds commands to the program. The checkout's bin adds the local stack's `dev` commands this way,
 * so the client itself never imports the local stack. It runs at every start: load in actions.
 */
export type CliExtension = (program: Command, context: CliExtensionContext) => void;

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * The checkout's `.devstack/env`, read when no configuration file is named (docs/decisions.md
   * §1 rule 4); the bin derives it from its own location. Absent: no such file.
   */
  checkoutConfig?: string | undefined;
  /** Aborted on SIGINT / SIGTERM: long-running commands shut down cleanly and return 0. */
  signal: AbortSignal;
  /** Long-running commands call this once they serve (tests wait on it). */
  onReady?: (info: { command: string; address?: { host: string; port: number } }) => void;
  /**
   * What would still keep the process alive once the command is over; `--verbose` prints it. Only
   * the bin has a process to look at: in-process callers leave it out.
   */
  openHandles?: () => Promise<string[]>;
  /** Commands added by the host of this CLI (the checkout's bin adds `dev`). */
  extensions?: readonly CliExtension[];
}

interface ServiceFlags {
  tunnelKeepalive?: TunnelTuning;
  connectionString?: string;
  endpoint?: string;
  scope?: string;
  allowInsecureRelay?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

function serviceOptions(cmd: Command): Command {
  return cmd
    .option(
      "--connection-string <cs>",
      "control plane: Endpoint=...;SharedAccessKeyName=...;SharedAccessKey=...",
    )
    .option(
      "--endpoint <url>",
      "control plane URL, with Entra ID (DefaultAzureCredential) instead of a SAS key",
    )
    .option("--scope <scope>", "Entra ID scope of the control plane, e.g. api://<app id>/.default")
    .option("--allow-insecure-relay", "accept a ws:// relay URL (local development)")
    .option(
      "--tunnel-keepalive <seconds>",
      "tunnel idle PING interval; silent peers end after 3x",
      parseTunnelKeepalive,
    )
    .option("--json", "machine-readable output");
}

async function serviceClient(flags: ServiceFlags, s: Settings): Promise<StreamsClient> {
  const options: StreamsClientOptions = {};
  if (flags.allowInsecureRelay) options.allowInsecureRelay = true;
  if (flags.tunnelKeepalive) options.tunnel = flags.tunnelKeepalive;
  const target = resolveControlPlane(flags, s);
  if (target.kind === "entra") {
    checkEntraEndpoint(target.endpoint); // before any credential is created or asked for a token
    const credential = await load.entra().cliCredential((name) => s.get(name));
    const { StreamsClient } = load.service();
    return new StreamsClient(target.endpoint, credential, { ...options, tokenScopes: target.scope });
  }
  return load.service().StreamsClient.fromConnectionString(target.connectionString, options);
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Opens a stream that SIGINT / SIGTERM may cancel while it opens; undefined when they did. (The bin
 * turns those signals into `signal`, so a command that ignored it could not be interrupted at all.)
 */
async function openUnlessInterrupted(
  client: StreamsClient,
  deviceId: string,
  name: string,
  moduleId: unknown,
  signal: AbortSignal,
): Promise<DeviceStream | undefined> {
  if (signal.aborted) return undefined;
  try {
    return await client.openStream(deviceId, name, {
      abortSignal: signal,
      ...(typeof moduleId === "string" ? { moduleId } : {}),
    });
  } catch (e) {
    if (signal.aborted && (e as { code?: unknown }).code === "Aborted") return undefined;
    throw e;
  }
}

/** SIGINT / SIGTERM end the stream, so its channels end and the command returns; call to stop. */
function closeOnAbort(signal: AbortSignal, stream: DeviceStream): () => void {
  const onAbort = () => void stream.close("Normal", "interrupted");
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

const interrupted = () => new StreamsError("Aborted", "interrupted before the echo completed");

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  let program: Command | undefined = undefined;
  const s = settings({
    env: io.env,
    configFlag: () => program?.opts<{ config?: string }>().config,
    checkoutFile: io.checkoutConfig,
  });
  const out = (text: string) => io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  const err = (text: string) => io.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
  /** A log line that carries text a device, the relay or the control plane chose. */
  const logLine = (line: string) => err(escapeControl(line));
  const print = (json: boolean | undefined, value: unknown, human: () => string) =>
    out(json ? safeJson(value, 2) : human());

  program = new Command("devicestream")
    .description("Secure TCP tunnels to IoT devices by device ID (docs/cli.md)")
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.stdout.write(t), writeErr: (t) => io.stderr.write(t) })
    .showHelpAfterError("(run with --help for usage)")
    .option("-v, --verbose", "debug lines on stderr (e.g. whatever is left open once the command is over)")
    .option(
      "--config <file>",
      "configuration file of KEY=value lines (or DEVICESTREAM_CONFIG); flags and the environment win over it",
    );

  program
    .command("device")
    .description("run the device agent: serve streams whose names are mapped with --allow / --echo")
    .option("--connection-string <cs>", "device or module identity (or IOTHUB_DEVICE_CONNECTION_STRING)")
    .option(
      "--ca-file <file>",
      "extra CA to trust for IoT Hub (the emulator's); or IOTHUB_DEVICE_CA_FILE in --config",
    )
    .addOption(new Option("--transport <t>", "mqtt or mqtt-ws").default("mqtt").argParser(parseTransport))
    .option("--keepalive <seconds>", "MQTT keepalive, seconds", (v) =>
      parsePositiveInt(v, "--keepalive", 3600),
    )
    .option(
      "--allow <NAME=HOST:PORT>",
      "serve stream NAME by connecting to HOST:PORT (repeatable)",
      collect,
      [],
    )
    .option("--echo", "serve stream name 'echo' by echoing")
    .option(
      "--relay-endpoint <url>",
      "the Web PubSub endpoint this device may join, as `devicestream endpoints` prints it",
      parseRelayEndpoint,
    )
    .option("--relay-hub <hub>", "the Web PubSub hub this device may join", parseRelayHub)
    .option("--allow-insecure-relay", "accept an http:// relay endpoint (a local emulator only)")
    .option(
      "--max-streams <n>",
      "streams open at once",
      (v) => parsePositiveInt(v, "--max-streams", 10_000),
      10,
    )
    .option(
      "--max-channels <n>",
      "channels per stream",
      (v) => parsePositiveInt(v, "--max-channels", 100_000),
      100,
    )
    .option("--method-name <name>", "direct method name", "deviceStream")
    .option(
      "--tunnel-keepalive <seconds>",
      "tunnel idle PING interval; silent peers end after 3x",
      parseTunnelKeepalive,
    )
    .action(async (o: Record<string, unknown>) => {
      const targets = collectAllows(o.allow as string[], o.echo === true);
      if (targets.size === 0)
        throw new UsageError("nothing to serve: give --allow NAME=HOST:PORT and/or --echo");
      const ignored = ignoredTrustSettings(s);
      if (ignored.length > 0) {
        err(
          `devicestream: ignoring ${ignored.join(", ")} in the environment: the agent's trust comes ` +
            "only from flags or the --config file",
        );
      }
      const { connectionString, caFile, relay } = agentSettings(o, s, io.env);
      const { openDeviceClient } = load.deviceClient();
      const { startAgent } = load.agent();
      const client = await openDeviceClient({
        connectionString,
        transport: o.transport as "mqtt" | "mqtt-ws",
        ...(caFile ? { caFile } : {}),
        ...(typeof o.keepalive === "number" ? { keepaliveSeconds: o.keepalive } : {}),
        env: io.env,
      });
      client.on("error", (e: Error) => logLine(`iot hub: ${e.message}`));
      // The SDK retries a drop it deems transient without a word; "disconnect" means it gave up
      // (IoT Hub unreachable, or a drop it does not retry). It then holds nothing open, so the
      // process would end with 0 and serve nothing: stop instead, with a code a supervisor restarts on.
      const lost = new Promise<string>((resolve) =>
        client.once("disconnect", (d?: { transportObj?: { message?: string } }) =>
          resolve(d?.transportObj?.message ?? "connection closed"),
        ),
      );
      const listener = startAgent(client, {
        targets,
        // The relay's proxy comes from the same environment as the IoT Hub connection's.
        relay,
        maxStreams: o.maxStreams as number,
        maxChannels: o.maxChannels as number,
        methodName: o.methodName as string,
        ...(o.tunnelKeepalive ? { tunnel: o.tunnelKeepalive } : {}),
        log: logLine,
      });
      err(`serving ${[...targets.keys()].join(", ")}; relay ${relay.endpoint} hub ${relay.hub}`);
      io.onReady?.({ command: "device" });
      const disconnected = await Promise.race([waitForAbort(io.signal), lost]);
      if (disconnected !== undefined) {
        logLine(`iot hub: disconnected (${disconnected}) and the SDK gave up reconnecting; stopping`);
        setExit(EXIT.deviceUnavailable);
      }
      await listener.close("GoingAway");
      await client.close();
    });

  serviceOptions(
    program
      .command("forward")
      .description("forward local TCP connections to stream NAME of DEVICE, one channel per connection")
      .argument("<device>", "device ID (case-sensitive)")
      .argument("<name>", "stream name the device maps to a target")
      .requiredOption("--listen <[host:]port>", "local address (host defaults to 127.0.0.1)", parseListen)
      .option("--module <id>", "module identity running the agent")
      .option("--stream-per-connection", "one stream per connection (the device-streams behaviour)"),
  ).action(async (deviceId: string, name: string, o: ServiceFlags & Record<string, unknown>) => {
    const client = await serviceClient(o, s);
    const { Forwarder } = load.forward();
    const forwarder = new Forwarder(client, {
      deviceId,
      name,
      listen: o.listen as { host: string; port: number },
      perConnection: o.streamPerConnection === true,
      ...(typeof o.module === "string" ? { openOptions: { moduleId: o.module } } : {}),
      log: logLine,
    });
    const address = await forwarder.listen();
    err(`forwarding ${address.address}:${address.port} -> ${deviceId}/${name}`);
    io.onReady?.({ command: "forward", address: { host: address.address, port: address.port } });
    await waitForAbort(io.signal);
    await forwarder.close();
  });

  serviceOptions(
    program
      .command("connect")
      .description("join stdin/stdout to one channel (ssh -o ProxyCommand='devicestream connect %n ssh')")
      .argument("<device>", "device ID (case-sensitive: use %n, not %h, in ssh)")
      .argument("<name>", "stream name")
      .option("--module <id>", "module identity running the agent"),
  ).action(async (deviceId: string, name: string, o: ServiceFlags & Record<string, unknown>) => {
    const client = await serviceClient(o, s);
    const stream = await openUnlessInterrupted(client, deviceId, name, o.module, io.signal);
    if (!stream) return;
    const stopWatching = closeOnAbort(io.signal, stream);
    try {
      const { pipeStdio } = load.stdio();
      await pipeStdio(await stream.openChannel("connect"), io.stdin, io.stdout);
    } finally {
      stopWatching();
      await stream.close();
    }
  });

  serviceOptions(
    program
      .command("echo")
      .description("the echo sample: interactive, or --bytes N to verify and measure")
      .argument("<device>", "device ID")
      .option(
        "--bytes <n>",
        "send N random bytes (e.g. 16M), verify the echo, print throughput and RTT",
        parseBytes,
      )
      .option("--name <name>", "stream name the device echoes", "echo")
      .option("--module <id>", "module identity running the agent"),
  ).action(async (deviceId: string, o: ServiceFlags & Record<string, unknown>) => {
    const client = await serviceClient(o, s);
    const measure = typeof o.bytes === "number";
    const stream = await openUnlessInterrupted(client, deviceId, o.name as string, o.module, io.signal);
    if (!stream) {
      if (measure) throw interrupted();
      return;
    }
    const stopWatching = closeOnAbort(io.signal, stream);
    try {
      const { echoTest, pipeStdio } = load.stdio();
      if (typeof o.bytes !== "number") {
        await pipeStdio(await stream.openChannel("echo"), io.stdin, io.stdout);
        return;
      }
      // A measurement cut short has no result: its channels just end, so the interrupt is the error.
      const result = await Promise.race([
        echoTest(stream, o.bytes),
        waitForAbort(io.signal).then(() => Promise.reject(interrupted())),
      ]);
      print(o.json, result, () =>
        [
          `${result.verified ? "verified" : "MISMATCH"}: ${result.bytes} bytes echoed in ${result.seconds.toFixed(3)} s`,
          `throughput ${result.megabytesPerSecond.toFixed(2)} MB/s each way`,
          `rtt p50 ${result.rttMs.p50.toFixed(2)} ms, max ${result.rttMs.max.toFixed(2)} ms (${result.rttMs.samples} samples)`,
        ].join("\n"),
      );
      if (!result.verified) setExit(EXIT.verifyFailed);
    } finally {
      stopWatching();
      await stream.close();
    }
  });

  const streams = program.command("streams").description("list, show or close streams");
  serviceOptions(
    streams
      .command("list")
      .argument("<device>", "device ID")
      .option("--state <state>", "only streams in this state (e.g. Established)"),
  ).action(async (deviceId: string, o: ServiceFlags & Record<string, unknown>) => {
    const client = await serviceClient(o, s);
    const all: StreamInfo[] = [];
    for await (const stream of client.listStreams(
      deviceId,
      typeof o.state === "string" ? { state: o.state } : {},
    )) {
      all.push(stream);
    }
    print(o.json, all, () =>
      all.length === 0
        ? `no streams for ${deviceId}`
        : all
            .map((x) =>
              escapeControl(
                `${x.streamId}  ${x.name.padEnd(12)} ${x.state.padEnd(12)} ${x.createdAt}` +
                  (x.closeReason ? `  ${x.closeReason}` : ""),
              ),
            )
            .join("\n"),
    );
  });
  serviceOptions(streams.command("show").argument("<device>").argument("<streamId>")).action(
    async (deviceId: string, streamId: string, o: ServiceFlags) => {
      const stream = await (await serviceClient(o, s)).getStream(deviceId, streamId);
      print(o.json, stream, () =>
        Object.entries(stream)
          .map(([k, v]) => escapeControl(`${k.padEnd(18)} ${typeof v === "string" ? v : JSON.stringify(v)}`))
          .join("\n"),
      );
    },
  );
  serviceOptions(streams.command("close").argument("<device>").argument("<streamId>")).action(
    async (deviceId: string, streamId: string, o: ServiceFlags) => {
      await (await serviceClient(o, s)).closeStream(deviceId, streamId);
      print(o.json, { closed: streamId }, () => `closed ${streamId}`);
    },
  );

  serviceOptions(program.command("endpoints").description("where streams flow")).action(
    async (o: ServiceFlags) => {
      const e = await (await serviceClient(o, s)).getEndpoints();
      print(o.json, e, () => {
        const relay = relayFlags(e.relay);
        return [
          `relay endpoint  ${relay.endpoint}`,
          `relay hub       ${relay.hub}`,
          `iot hub         ${e.iotHub.hostName} (method ${e.iotHub.methodName})`,
          `api             ${e.apiVersions.join(", ")}`,
          `agent flags     --relay-endpoint ${relay.endpoint} --relay-hub ${relay.hub}`,
        ]
          .map(escapeControl)
          .join("\n");
      });
    },
  );

  program
    .command("sas")
    .description("mint a control-plane SAS token (defaults from the connection string)")
    .option("--connection-string <cs>", "control plane connection string")
    .option("--policy <name>", "SAS policy name")
    .option("--key <base64>", "SAS policy key")
    .option("--resource <sr>", "the control plane's SAS resource (default: its host name)")
    .option(
      "--ttl <duration>",
      `lifetime: seconds, or 30m, 12h, 7d (at most ${MAX_SAS_TTL_SECONDS / 86400}d)`,
      (v) => parseTtl(v, MAX_SAS_TTL_SECONDS),
      3600,
    )
    .option("--json", "machine-readable output")
    .action((o: Record<string, unknown>) => {
      let policyName = o.policy as string | undefined;
      let key = o.key as string | undefined;
      let resource = o.resource as string | undefined;
      if (!policyName || !key || !resource) {
        const cs = parseConnectionString(
          requireConnectionString(o.connectionString as string | undefined, s),
        );
        policyName ??= cs.policyName;
        key ??= cs.key;
        resource ??= cs.sasResource ?? new URL(cs.endpoint).hostname;
      }
      const ttlSeconds = o.ttl as number;
      const token = mintSasToken({ resource, policyName, key, ttlSeconds });
      const expiresAt = new Date(Date.now() + ttlSeconds * 1000).toISOString();
      print(o.json as boolean | undefined, { token, expiresAt }, () => token);
    });

  const context: CliExtensionContext = {
    settings: s,
    out,
    err,
    cwd: io.cwd,
    relay: async () => relayFlags((await (await serviceClient({}, s)).getEndpoints()).relay),
  };
  for (const extend of io.extensions ?? []) extend(program, context);

  return program;
}

/** Runs the CLI; resolves with the exit code. Errors print one line saying what to do. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exit: number = EXIT.ok;
  const program = buildProgram(io, (code) => (exit = code));
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      exit = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else {
      io.stderr.write(`devicestream: ${describe(e)}\n`);
      exit = exitCodeFor(e);
    }
  }
  if (program.opts<{ verbose?: boolean }>().verbose === true && io.openHandles) {
    // A command must end with nothing of its own left open: the bin's forced exit would hide a leak.
    const open = await io.openHandles();
    io.stderr.write(
      open.length === 0
        ? "devicestream: debug: nothing left open\n"
        : `devicestream: debug: still open after the command: ${open.join(", ")}\n`,
    );
  }
  return exit;
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const details = (e as { details?: Record<string, unknown> }).details;
  const reason = details && typeof details.reason === "string" ? ` (device says: ${details.reason})` : "";
  const code = (e as { code?: unknown }).code;
  const hint =
    code === "DeviceNotOnline"
      ? "; is the agent (`devicestream device`) running and connected?"
      : code === "RelayNotAllowed"
        ? "; pass --allow-insecure-relay only for a local emulator"
        : "";
  // The message and the reason come from the control plane, a device or the relay.
  return escapeControl(`${e.message.replace(/\.$/, "")}${reason}${hint}`);
}

/**
 * The relay as the agent's flags take it: the control plane reports the client endpoint
 * (`wss://<host>/client/hubs/<hub>`); the agent takes the Web PubSub endpoint (`https://<host>`).
 */
export function relayFlags(relay: { endpoint: string; hub: string }): { endpoint: string; hub: string } {
  let url: URL;
  try {
    url = new URL(relay.endpoint);
  } catch {
    throw new StreamsError(
      "InvalidResponse",
      "the control plane reported a relay endpoint that is not a URL",
    );
  }
  const scheme = url.protocol === "ws:" || url.protocol === "http:" ? "http:" : "https:";
  return { endpoint: `${scheme}//${url.host}`, hub: relay.hub };
}
