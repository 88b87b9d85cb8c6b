/** What the service-side commands share: their options, the client they build, the relay flags. */
import type { Command } from "commander";
import type { DeviceStream, StreamsClient, StreamsClientOptions, TunnelTuning } from "../../sdk/service";
import { StreamsError } from "../../sdk/service/errors";
import { parseTunnelKeepalive } from "../args";
import { type Settings, checkEntraEndpoint, resolveControlPlane } from "../config";
import { load } from "../load";

export interface ServiceFlags {
  tunnelKeepalive?: TunnelTuning;
  connectionString?: string;
  endpoint?: string;
  scope?: string;
  allowInsecureRelay?: boolean;
  json?: boolean;
}

export function serviceOptions(cmd: Command): Command {
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

export async function serviceClient(flags: ServiceFlags, s: Settings): Promise<StreamsClient> {
  // StreamsClient reads only the status and the text of what its fetch returns.
  const options: StreamsClientOptions = { fetch: load.httpFetch().httpFetch as unknown as typeof fetch };
  if (flags.allowInsecureRelay) options.allowInsecureRelay = true;
  if (flags.tunnelKeepalive) options.tunnel = flags.tunnelKeepalive;
  const target = resolveControlPlane(flags, s);
  if (target.kind === "entra") {
    checkEntraEndpoint(target.endpoint); // before any credential is created or asked for a token
    const entra = load.entra();
    const credential = await entra.cliCredential((name) => s.get(name));
    // The local Entra ID's CA (npm start -- --keyless) is also the relay's.
    const relayAgent = entra.localRelayAgent((name) => s.get(name));
    if (relayAgent) options.relayAgent = relayAgent;
    const { StreamsClient } = load.service();
    return new StreamsClient(target.endpoint, credential, { ...options, tokenScopes: target.scope });
  }
  return load.service().StreamsClient.fromConnectionString(target.connectionString, options);
}

/**
 * Opens a stream that SIGINT / SIGTERM may cancel while it opens; undefined when they did. (The bin
 * turns those signals into `signal`, so a command that ignored it could not be interrupted at all.)
 */
export async function openUnlessInterrupted(
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
export function closeOnAbort(signal: AbortSignal, stream: DeviceStream): () => void {
  const onAbort = () => void stream.close("Normal", "interrupted");
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

export const interrupted = () => new StreamsError("Aborted", "interrupted before the echo completed");

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
