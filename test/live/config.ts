/**
 * The opt-in live suite's configuration: which deployed control plane, IoT hub and Web PubSub the
 * SDK end-to-end tests run against (docs/live-tests.md). Read from environment variables only when
 * the live target is requested (DEVICESTREAMS_TARGET=live, which `npm run test:live` sets); any
 * missing or malformed variable is an error that names it, never a silent skip.
 */
import type { TokenCredential } from "@azure/core-auth";
import type { IotHubConnection } from "../../shared/iothub";
import { parseConnectionString } from "../../client/sdk/service/connectionString";

/** Set by `npm run test:live` (jest.live.config.js); anything else runs the in-process stack. */
export const TARGET_VARIABLE = "DEVICESTREAMS_TARGET";

export const LIVE_VARIABLES = {
  connectionString: "DEVICESTREAMS_LIVE_CONNECTION_STRING",
  endpoint: "DEVICESTREAMS_LIVE_ENDPOINT",
  tokenScope: "DEVICESTREAMS_LIVE_TOKEN_SCOPE",
  iotHubHost: "DEVICESTREAMS_LIVE_IOTHUB_HOST",
  webPubSubHost: "DEVICESTREAMS_LIVE_WEBPUBSUB_HOST",
  webPubSubHub: "DEVICESTREAMS_LIVE_WEBPUBSUB_HUB",
} as const;

/** The deployment's hub when WEBPUBSUB_HUB is left at its default (shared/config.ts). */
export const DEFAULT_LIVE_HUB = "streams";

export const LIVE_USAGE = `The live suite runs the SDK end-to-end tests against a deployment (docs/live-tests.md). Set:
  ${LIVE_VARIABLES.connectionString}  Endpoint=https://<app>.azurewebsites.net;SharedAccessKeyName=<policy>;SharedAccessKey=<key>
    or ${LIVE_VARIABLES.endpoint}  https://<app>.azurewebsites.net (CONTROL_PLANE_URL)
    with ${LIVE_VARIABLES.tokenScope}  api://<app id>/.default (Entra, DefaultAzureCredential)
  ${LIVE_VARIABLES.iotHubHost}  <hub>.azure-devices.net (IOTHUB_HOST_NAME; registry calls with DefaultAzureCredential)
  ${LIVE_VARIABLES.webPubSubHost}  <name>.webpubsub.azure.com (or WEBPUBSUB_ENDPOINT: https://<name>.webpubsub.azure.com)
  ${LIVE_VARIABLES.webPubSubHub}  the hub (WEBPUBSUB_HUB; optional, default ${DEFAULT_LIVE_HUB})`;

export type ControlPlaneAccess =
  { connectionString: string } | { endpoint: string; tokenScope: string; credential?: TokenCredential };

export interface LiveConfig {
  controlPlane: ControlPlaneAccess;
  /** Registry operations (create/delete the suite's identities). */
  iotHub: IotHubConnection;
  /** What device connection strings carry: the hub's host name, and where to dial if elsewhere. */
  devices: { hostName: string; gatewayHostName?: string; caFile?: string };
  /** The relay the control plane hands out, the only one devices join; https:// only unless allowInsecure. */
  relay: { endpoint: string; hub: string; allowInsecure?: boolean };
}

export class LiveConfigError extends Error {
  override name = "LiveConfigError";
}

/**
 * `local` (default): the in-process stack. `live`: a deployment, from the variables below.
 * `loopback`: the live target's code pointed at the in-process stack's emulators (no Azure involved),
 * to exercise that code path on machines without a subscription.
 */
export type TargetKind = "local" | "live" | "loopback";

export function targetKind(env: NodeJS.ProcessEnv = process.env): TargetKind {
  const v = env[TARGET_VARIABLE]?.trim() || "local";
  if (v === "local" || v === "live" || v === "loopback") return v;
  throw new LiveConfigError(`${TARGET_VARIABLE} must be local, live or loopback, not '${v}'`);
}

export function liveRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return targetKind(env) === "live";
}

const value = (env: NodeJS.ProcessEnv, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v ? v : undefined;
};

/** A bare DNS host name (`a.b.c`), from a host or an https:// URL without a path. */
function hostOf(name: string, raw: string, problems: string[]): string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.push(`${name} is not a host name: '${raw}'`);
    return "";
  }
  if (url.protocol !== "https:" || url.port || (url.pathname !== "/" && url.pathname !== "") || url.search) {
    problems.push(`${name} must be a host name or an https:// URL without port or path, not '${raw}'`);
    return "";
  }
  return url.hostname;
}

/**
 * The live configuration from the environment. Only Azure-shaped values come from here: https
 * control plane, Entra for the hub's registry, a wss:// relay. (Tests may build a LiveConfig by hand
 * to point the same code at the local emulators; no variable can make the live run accept ws://.)
 */
export function liveConfigFromEnv(env: NodeJS.ProcessEnv, credential?: TokenCredential): LiveConfig {
  const V = LIVE_VARIABLES;
  const problems: string[] = [];
  const connectionString = value(env, V.connectionString);
  const endpoint = value(env, V.endpoint);
  const tokenScope = value(env, V.tokenScope);
  const iotHubHost = value(env, V.iotHubHost);
  const webPubSubHost = value(env, V.webPubSubHost);
  const webPubSubHub = value(env, V.webPubSubHub) ?? DEFAULT_LIVE_HUB;

  if (!connectionString && !endpoint && !tokenScope && !iotHubHost && !webPubSubHost) {
    throw new LiveConfigError(`${TARGET_VARIABLE}=live but no live variable is set.\n${LIVE_USAGE}`);
  }

  let controlPlane: ControlPlaneAccess | undefined;
  if (connectionString && (endpoint || tokenScope)) {
    problems.push(
      `set either ${V.connectionString} (SAS) or ${V.endpoint} with ${V.tokenScope} (Entra), not both`,
    );
  } else if (connectionString) {
    try {
      const parsed = parseConnectionString(connectionString);
      if (new URL(parsed.endpoint).protocol !== "https:") {
        problems.push(`${V.connectionString}: the Endpoint must be https://`);
      } else {
        controlPlane = { connectionString };
      }
    } catch (err) {
      // The parser's message names the missing field; it never echoes the key.
      problems.push(`${V.connectionString}: ${(err as Error).message}`);
    }
  } else if (endpoint || tokenScope) {
    if (!endpoint) problems.push(`${V.endpoint} is missing (${V.tokenScope} is set)`);
    if (!tokenScope)
      problems.push(`${V.tokenScope} is missing (${V.endpoint} is set): e.g. api://<app id>/.default`);
    if (endpoint) {
      let url: URL | undefined;
      try {
        url = new URL(endpoint);
      } catch {
        problems.push(`${V.endpoint} is not a URL: '${endpoint}'`);
      }
      if (url && url.protocol !== "https:")
        problems.push(`${V.endpoint} must be https://, not '${endpoint}'`);
      if (url && url.protocol === "https:" && tokenScope) {
        controlPlane = { endpoint: url.origin, tokenScope, ...(credential ? { credential } : {}) };
      }
    }
  } else {
    problems.push(`${V.connectionString} (or ${V.endpoint} with ${V.tokenScope}) is missing`);
  }

  let hubHost = "";
  if (!iotHubHost) problems.push(`${V.iotHubHost} is missing`);
  else hubHost = hostOf(V.iotHubHost, iotHubHost, problems);
  let relayHost = "";
  if (!webPubSubHost) problems.push(`${V.webPubSubHost} is missing`);
  else relayHost = hostOf(V.webPubSubHost, webPubSubHost, problems);

  if (problems.length > 0 || !controlPlane) {
    throw new LiveConfigError(
      `The live configuration is incomplete:\n- ${problems.join("\n- ")}\n${LIVE_USAGE}`,
    );
  }
  return {
    controlPlane,
    iotHub: { hostName: hubHost, credential: credential ?? lazyDefaultCredential() },
    devices: { hostName: hubHost },
    relay: { endpoint: `https://${relayHost}`, hub: webPubSubHub },
  };
}

/** DefaultAzureCredential, created on first use (so parsing stays free of I/O and imports at test time). */
export function lazyDefaultCredential(): TokenCredential {
  let inner: TokenCredential | undefined;
  return {
    getToken: async (scopes, options) => {
      if (!inner) {
        const { DefaultAzureCredential } = await import("@azure/identity");
        inner = new DefaultAzureCredential();
      }
      return inner.getToken(scopes, options);
    },
  };
}
