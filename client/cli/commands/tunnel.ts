/** `forward`, `connect` and `echo`: the commands that carry bytes through a stream (docs/cli.md). */
import type { Command } from "commander";
import { parseBytes, parseListen } from "../args";
import { EXIT } from "../exitCodes";
import { type CommandContext, waitForAbort } from "../io";
import { load } from "../load";
import {
  type ServiceFlags,
  closeOnAbort,
  interrupted,
  openUnlessInterrupted,
  serviceClient,
  serviceOptions,
} from "./service";

export function registerTunnelCommands(program: Command, ctx: CommandContext): void {
  const { io, settings: s, err, logLine, print, setExit } = ctx;
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
}
