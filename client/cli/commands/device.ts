/** `devicestream device`: the device agent (docs/cli.md). */
import { type Command, Option } from "commander";
import {
  UsageError,
  collectAllows,
  parsePositiveInt,
  parseRelayEndpoint,
  parseRelayHub,
  parseTransport,
  parseTunnelKeepalive,
} from "../args";
import { agentSettings, ignoredTrustSettings } from "../config";
import { EXIT } from "../exitCodes";
import { type CommandContext, waitForAbort } from "../io";
import { load } from "../load";

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerDeviceCommand(program: Command, ctx: CommandContext): void {
  const { io, settings: s, err, logLine, setExit } = ctx;
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
      // Before the device SDK loads: its start-up alone would grow the young generation.
      load.heap().keepYoungGenerationSmall();
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
}
