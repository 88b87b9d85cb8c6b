/** `streams list|show|close` and `endpoints`: the control plane's view (docs/cli.md). */
import type { Command } from "commander";
import { escapeControl } from "../../../common/text";
import type { StreamInfo } from "../../sdk/service";
import type { CommandContext } from "../io";
import { type ServiceFlags, relayFlags, serviceClient, serviceOptions } from "./service";

export function registerStreamsCommands(program: Command, ctx: CommandContext): void {
  const { settings: s, print } = ctx;
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
}
