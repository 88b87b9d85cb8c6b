/**
 * The composition root: builds every service of the control plane from configuration. Azure mode
 * is keyless (managed identity through DefaultAzureCredential); local mode uses connection strings
 * for Azurite and the emulators. Nothing else in the code base decides between the two.
 */
import { readFileSync } from "node:fs";
import { TableClient } from "@azure/data-tables";
import { DefaultAzureCredential } from "@azure/identity";
import { accessControl } from "./api/access";
import { type RelayEventAuthenticator, createRelayEventAuthenticator, createServiceAuthChain } from "./auth";
import { type Config, ConfigError, loadConfig } from "./config";
import { Errors } from "./errors";
import { type DirectMethodInvoker, IotHubDirectMethodInvoker, createIotHubClients } from "./iothub";
import { type Logger, createLogger } from "./log";
import type { Relay } from "./relay/relay";
import { WebPubSubRelay } from "./relay/webPubSubRelay";
import type { AppServices } from "./routes";
import { TableStreamStore } from "./store/streamStore";
import { StreamService } from "./streams/service";

function connectionStringPart(connectionString: string, name: string): string | undefined {
  for (const part of connectionString.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim().toLowerCase() === name.toLowerCase())
      return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The authenticator of Web PubSub's upstream calls, from settings alone: no credential, no store,
 * no network until a token must be verified.
 */
export function relayGuardOf(config: Readonly<Config>): RelayEventAuthenticator {
  const wps = config.webPubSub;
  const accessKeys =
    "connectionString" in wps ? [connectionStringPart(wps.connectionString, "AccessKey") ?? ""] : [];
  // Web PubSub names itself by host name, without a port, in WebHook-Request-Origin.
  const relayHost = new URL(
    "connectionString" in wps ? (connectionStringPart(wps.connectionString, "Endpoint") ?? "") : wps.endpoint,
  ).hostname;
  return createRelayEventAuthenticator(config.auth, accessKeys, relayHost);
}

/** Replacements for the outside world, for tests that run without an emulator. */
export interface ServiceOverrides {
  relay?: Relay;
  signaller?: DirectMethodInvoker;
  logger?: Logger;
  now?: () => number;
}

export async function createServices(
  config: Readonly<Config>,
  overrides: ServiceOverrides = {},
): Promise<AppServices> {
  const logger = overrides.logger ?? createLogger({ minLevel: config.logLevel });
  const credential =
    config.mode === "azure"
      ? new DefaultAzureCredential(
          config.managedIdentityClientId ? { managedIdentityClientId: config.managedIdentityClientId } : {},
        )
      : undefined;
  const need = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("azure mode without a credential");
    return value;
  };

  const table =
    "connectionString" in config.tables
      ? TableClient.fromConnectionString(config.tables.connectionString, config.tables.tableName, {
          // Azurite speaks plain http on loopback; Azure endpoints are https and never take this path.
          allowInsecureConnection: true,
        })
      : new TableClient(config.tables.endpoint, config.tables.tableName, need(credential));
  const store = await TableStreamStore.open(table);

  const wps = config.webPubSub;
  const relay =
    overrides.relay ??
    ("connectionString" in wps
      ? new WebPubSubRelay({ connectionString: wps.connectionString }, wps.hub)
      : new WebPubSubRelay({ endpoint: wps.endpoint, credential: need(credential) }, wps.hub));

  const iot = config.iotHub;
  const { client } =
    "connectionString" in iot
      ? createIotHubClients({
          connectionString: iot.connectionString,
          ...(iot.caFile ? { ca: readFileSync(iot.caFile, "utf8") } : {}),
        })
      : createIotHubClients({ hostName: iot.hostName, credential: need(credential) });
  const iotHubHostName =
    "connectionString" in iot ? (connectionStringPart(iot.connectionString, "HostName") ?? "") : iot.hostName;

  const service = new StreamService({
    store,
    relay,
    signaller: overrides.signaller ?? new IotHubDirectMethodInvoker(client),
    logger,
    ...(overrides.now ? { now: overrides.now } : {}),
    limits: config.streams,
    methodName: iot.methodName,
  });
  return {
    config,
    service,
    access: accessControl(createServiceAuthChain(config.auth), config.streams.maxPerCaller),
    relayGuard: relayGuardOf(config),
    logger,
    relayEndpoint: relay.clientEndpoint,
    iotHubHostName,
  };
}

/** The settings, or the 500-free "misconfigured" error that names the bad ones. */
function configFrom(env: NodeJS.ProcessEnv): Readonly<Config> {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) throw Errors.misconfigured(err.problems);
    throw err;
  }
}

/**
 * Services built once, on first use. A failure is not cached, so a fixed setting or a storage
 * account that came up late is picked up by the next request without a restart.
 */
export function lazyServices(env: () => NodeJS.ProcessEnv): () => Promise<AppServices> {
  let pending: Promise<AppServices> | undefined;
  return () => {
    pending ??= (async () => createServices(configFrom(env())))().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/**
 * The relay-events authenticator built once from the settings, apart from the services: Web
 * PubSub's abuse-protection OPTIONS is answered while the store (or its role assignment) is not
 * ready yet, so validating the event handler does not wait on RBAC propagation.
 */
export function lazyRelayGuard(env: () => NodeJS.ProcessEnv): () => Promise<RelayEventAuthenticator> {
  let guard: RelayEventAuthenticator | undefined;
  return async () => (guard ??= relayGuardOf(configFrom(env())));
}
