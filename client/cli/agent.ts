/**
 * The device agent: serves each accepted stream's channels by dialling the one target mapped to
 * the stream's name. Nothing in a stream request or a channel reaches the dialler except that name,
 * so the service can never make the device dial anything else.
 */
import { type Socket, connect } from "node:net";
import type { TunnelChannel } from "../tunnel";
import { DeviceStreamListener, type DeviceStreamListenerOptions, type MethodHost } from "../sdk/device";
import type { TunnelTuning } from "../sdk/service";
import type { HostPort } from "./args";
import { splice } from "./splice";

export type Target = HostPort | "echo";

export interface AgentOptions {
  targets: ReadonlyMap<string, Target>;
  /**
   * The one relay this agent may join: the Web PubSub endpoint and hub as `devicestream endpoints`
   * prints them (`--relay-endpoint`, `--relay-hub`).
   */
  relay: DeviceStreamListenerOptions["relay"];
  maxStreams?: number;
  maxChannels?: number;
  methodName?: string;
  tunnel?: TunnelTuning;
  /** One line per event; never receives tokens. */
  log?: (line: string) => void;
  /** Seam for tests: how a target is dialled. */
  dial?: (target: HostPort) => Socket;
}

export function startAgent(client: MethodHost, options: AgentOptions): DeviceStreamListener {
  const log = options.log ?? (() => undefined);
  const dial =
    options.dial ?? ((t: HostPort) => connect({ host: t.host, port: t.port, allowHalfOpen: true }));
  const listener = new DeviceStreamListener(client, {
    relay: options.relay,
    ...(options.maxStreams !== undefined ? { maxStreams: options.maxStreams } : {}),
    ...(options.maxChannels !== undefined ? { maxChannelsPerStream: options.maxChannels } : {}),
    ...(options.methodName !== undefined ? { methodName: options.methodName } : {}),
    ...(options.tunnel !== undefined ? { tunnel: options.tunnel } : {}),
    onRequest: ({ name }) =>
      options.targets.has(name)
        ? { accept: true }
        : // Which names a device serves is its own business: the caller learns only that this is not one.
          { accept: false, reason: `stream name '${name}' is not served here` },
  });
  listener.on("refused", ({ streamId, status, reason, detail }) =>
    log(`refused stream ${streamId ?? "?"} (${status}): ${reason}${detail ? ` [${detail}]` : ""}`),
  );
  listener.on("stream", (stream) => {
    const target = options.targets.get(stream.name)!;
    log(`stream ${stream.streamId} '${stream.name}' open`);
    stream.on("close", ({ reason, message, stats }) =>
      log(
        `stream ${stream.streamId} closed: ${reason}${message ? ` (${message})` : ""}; ` +
          `sent ${stats.bytesSent} B, received ${stats.bytesReceived} B`,
      ),
    );
    stream.on("channel", (channel) => serveChannel(channel, target, dial, log));
  });
  return listener;
}

function serveChannel(
  channel: TunnelChannel,
  target: Target,
  dial: (t: HostPort) => Socket,
  log: (line: string) => void,
): void {
  if (target === "echo") {
    channel.on("error", () => undefined);
    channel.pipe(channel);
    return;
  }
  const socket = dial(target);
  void splice(socket, channel, (err) => {
    // Only the error code crosses the tunnel, never local detail.
    log(`channel ${channel.id}: target ${target.host}:${target.port} failed: ${err.code ?? err.message}`);
    channel.abort("TargetError", err.code ?? "target connection failed");
  });
}
