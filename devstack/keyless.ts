/**
 * `npm start -- --keyless`: the control plane in Azure mode (DEPLOYMENT_MODE=azure) against the
 * local services, with no key or connection string in its settings. It gets the setting names
 * `infra/app/api.bicep` writes, endpoints instead of keys, and `DefaultAzureCredential` through the
 * local Entra ID's managed-identity endpoint. Web PubSub and IoT Hub check every bearer token
 * against the role assignments declared in `infra/`; Azurite serves HTTPS with `--oauth basic`.
 * Every service counts bearer and key-signed requests, so a test proves which path ran.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { join, resolve } from "node:path";
import { type EntraEmulator, type LocalPrincipal, startEntraEmulator } from "../emulators/entra";
import { type BearerCheck, type RoleAssignment, bearerCheck } from "../emulators/entra/rbac";
import { type TlsMaterial, ensureTlsMaterial } from "../emulators/iothub/certs";
import type { EventHandlerSetting } from "../emulators/webpubsub";
import { type DeclaredAssignment, loadDeclaredAssignments } from "./roleAssignments";
import { DEV_HUB } from "./settings";

/** The control plane's App ID URI in the local tenant: what the CLI asks tokens for. */
export const LOCAL_APP_ID_URI = "api://device-streams-local";
/** The app role the CLI's principal holds; the grant is `infra/main.bicep`'s `entraRoles` default. */
export const LOCAL_APP_ROLE = "Streams.Operator";
const LOCAL_ENTRA_ROLES = [{ role: LOCAL_APP_ROLE, devices: ["*", "*/*"], streams: ["*"] }];

/**
 * Variables through which `DefaultAzureCredential` would pick another credential before the
 * managed identity (EnvironmentCredential, WorkloadIdentityCredential): never in the control plane.
 */
export const CREDENTIAL_OVERRIDES = [
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_CLIENT_CERTIFICATE_PASSWORD",
  "AZURE_USERNAME",
  "AZURE_PASSWORD",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_AUTHORITY_HOST",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "IDENTITY_SERVER_THUMBPRINT",
  "IMDS_ENDPOINT",
] as const;

const WPS = { audience: "https://webpubsub.azure.com", scope: "Microsoft.SignalRService/webPubSub" };
const HUB = { audience: "https://iothubs.azure.net", scope: "Microsoft.Devices/IotHubs" };

/** How the requests a service saw were signed. */
export interface AuthTally {
  bearer: number;
  keySigned: number;
}

/** Table requests by scheme: Bearer, or a key (SharedKey / SharedKeyLite, or a SAS `sig=`). */
export function tallyTableRequest(tally: AuthTally, req: IncomingMessage): void {
  const auth = req.headers.authorization ?? "";
  if (/^Bearer\s/i.test(auth)) tally.bearer++;
  else if (/^SharedKey(Lite)?\s/i.test(auth) || /[?&]sig=/i.test(req.url ?? "")) tally.keySigned++;
}

/** The TLS material of the local stack: the IoT Hub emulator's CA, one for every local service. */
export function localTls(stateDir: string, host: string): Promise<TlsMaterial> {
  return ensureTlsMaterial(resolve(stateDir, "iothub"), host);
}

export interface KeylessStack {
  readonly tls: TlsMaterial;
  readonly entra: EntraEmulator;
  /** Managed identities: the control plane's (`appIdentity`) and Web PubSub's (`relayIdentity`). */
  readonly app: LocalPrincipal;
  readonly relay: LocalPrincipal;
  /** The app registration the CLI signs in as (client credentials). */
  readonly cli: LocalPrincipal;
  /** The control plane's own application. */
  readonly apiClientId: string;
  readonly webPubSubCheck: BearerCheck;
  readonly iotHubCheck: BearerCheck;
  readonly counts: { webPubSub: AuthTally; iotHub: AuthTally; tables: AuthTally };
  /** Options for Azurite, the IoT Hub and Web PubSub emulators in this mode. */
  azurite(stateDir: string): {
    keyless: { certPath: string; keyPath: string };
    onRequest: (req: IncomingMessage) => void;
  };
  iotHub(): { entra: BearerCheck; onKeySignedRequest: () => void };
  webPubSub(handler: EventHandlerSetting): {
    tls: TlsMaterial;
    entra: BearerCheck;
    onKeySignedRequest: () => void;
    identityToken: (resource: string) => Promise<string>;
    eventHandlers: Record<string, EventHandlerSetting>;
  };
  /** The control plane's settings: names as infra/app/api.bicep writes them, no key. */
  controlPlaneSettings(services: {
    tableEndpoint: string;
    webPubSubEndpoint: string;
    iotHubHostName: string;
    sasResource: string;
  }): Record<string, string>;
  /** What `.devstack/env` holds for the CLI: its endpoint, scope and client credentials. */
  clientSettings(functionsUrl: string): Record<string, string>;
  /** One line: bearer / key-signed requests per service and managed-identity tokens issued. */
  summary(): string;
  close(): Promise<void>;
}

/** The principal each identity module of main.bicep stands for locally (the deployer has none). */
function assignmentsFor(
  declared: readonly DeclaredAssignment[],
  principals: Readonly<Record<string, LocalPrincipal>>,
): RoleAssignment[] {
  return declared.flatMap((d) => {
    const p = principals[d.identity];
    return p ? [{ principalId: p.objectId, roleDefinitionId: d.roleDefinitionId, scope: d.scope }] : [];
  });
}

export async function startKeyless(options: {
  host: string;
  stateDir: string;
  repoRoot: string;
  log?: (line: string) => void;
}): Promise<KeylessStack> {
  const tls = await localTls(options.stateDir, options.host);
  const principal = (secret?: string): LocalPrincipal => ({
    objectId: randomUUID(),
    clientId: randomUUID(),
    ...(secret ? { secret } : {}),
  });
  const app = principal();
  const relay = principal();
  const cli = principal(randomUUID());
  const apiClientId = randomUUID();
  const assignments = assignmentsFor(await loadDeclaredAssignments(options.repoRoot), {
    appIdentity: app,
    relayIdentity: relay,
  });
  const entra = await startEntraEmulator({
    host: options.host,
    tls,
    principals: [app, relay, cli],
    applications: [
      {
        clientId: apiClientId,
        identifierUris: [LOCAL_APP_ID_URI],
        appRoleAssignments: { [cli.objectId]: [LOCAL_APP_ROLE] },
      },
    ],
    managedIdentities: [app.clientId, relay.clientId],
    ...(options.log ? { log: options.log } : {}),
  });
  const issuers = [entra.issuer.v1Issuer(), entra.issuer.v2Issuer()];
  const check = (service: { audience: string; scope: string }) =>
    bearerCheck(entra.issuer.jwks, { issuers, ...service, assignments: () => assignments });
  const webPubSubCheck = check(WPS);
  const iotHubCheck = check(HUB);
  const tables: AuthTally = { bearer: 0, keySigned: 0 };
  const wpsKeys = { keySigned: 0 };
  const hubKeys = { keySigned: 0 };
  const counts = {
    get webPubSub(): AuthTally {
      return { bearer: webPubSubCheck.seen, keySigned: wpsKeys.keySigned };
    },
    get iotHub(): AuthTally {
      return { bearer: iotHubCheck.seen, keySigned: hubKeys.keySigned };
    },
    tables,
  };
  const tally = (t: AuthTally) => `${t.bearer} bearer, ${t.keySigned} key-signed`;
  return {
    tls,
    entra,
    app,
    relay,
    cli,
    apiClientId,
    webPubSubCheck,
    iotHubCheck,
    counts,
    azurite: (stateDir) => ({
      keyless: {
        certPath: join(resolve(stateDir), "iothub", "server.crt"),
        keyPath: join(resolve(stateDir), "iothub", "server.key"),
      },
      onRequest: (req) => tallyTableRequest(tables, req),
    }),
    iotHub: () => ({ entra: iotHubCheck, onKeySignedRequest: () => void hubKeys.keySigned++ }),
    webPubSub: (handler) => ({
      tls,
      entra: webPubSubCheck,
      onKeySignedRequest: () => void wpsKeys.keySigned++,
      // Web PubSub's own identity asks for the handler's resource, as the hub does in Azure.
      identityToken: async (resource) => (await entra.issue(relay, resource)).token,
      eventHandlers: {
        [DEV_HUB]: { ...handler, auth: { type: "ManagedIdentity", resource: LOCAL_APP_ID_URI } },
      },
    }),
    controlPlaneSettings: (s) => ({
      DEPLOYMENT_MODE: "azure",
      AZURE_CLIENT_ID: app.clientId,
      TABLES_ENDPOINT: s.tableEndpoint,
      TABLES_TABLE_NAME: "streams",
      WEBPUBSUB_ENDPOINT: s.webPubSubEndpoint,
      WEBPUBSUB_HUB: DEV_HUB,
      IOTHUB_HOST_NAME: s.iotHubHostName,
      ENTRA_TENANT_ID: entra.tenantId,
      ENTRA_AUDIENCE: `${LOCAL_APP_ID_URI},${apiClientId}`,
      ENTRA_ROLES: JSON.stringify(LOCAL_ENTRA_ROLES),
      RELAY_EVENTS_PRINCIPAL_ID: relay.objectId,
      RELAY_EVENTS_AUDIENCE: `${LOCAL_APP_ID_URI},${apiClientId}`,
      RELAY_EVENTS_ALLOWED_ORIGINS: new URL(s.webPubSubEndpoint).hostname,
      SERVICE_SAS_RESOURCE: s.sasResource,
      LOG_LEVEL: "info",
      // Not in api.bicep: Azure's authority is the default, and the platform sets the identity
      // endpoint and its secret for the app, as App Service does.
      ENTRA_AUTHORITY_HOST: entra.authorityHost,
      IDENTITY_ENDPOINT: entra.identityEndpoint,
      IDENTITY_HEADER: entra.identityHeader,
    }),
    clientSettings: (functionsUrl) => ({
      DEVICESTREAM_ENDPOINT: functionsUrl,
      DEVICESTREAM_SCOPE: `${LOCAL_APP_ID_URI}/.default`,
      AZURE_AUTHORITY_HOST: entra.authorityHost,
      AZURE_TENANT_ID: entra.tenantId,
      AZURE_CLIENT_ID: cli.clientId,
      AZURE_CLIENT_SECRET: cli.secret!,
      DEVICESTREAM_ENTRA_CA_FILE: tls.caPath,
    }),
    summary: () =>
      `keyless requests: Web PubSub REST ${tally(counts.webPubSub)}; ` +
      `IoT Hub REST ${tally(counts.iotHub)}; Tables ${tally(tables)}; ` +
      `managed-identity tokens ${entra.hits.managedIdentity}`,
    close: () => entra.close(),
  };
}

/** The settings that name an identity endpoint or a credential: never handed down from the shell. */
export function scrubbedEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of CREDENTIAL_OVERRIDES) delete out[name];
  delete out.IDENTITY_ENDPOINT;
  delete out.IDENTITY_HEADER;
  return out;
}

const CHILD_MARK = "DEVICESTREAM_KEYLESS_CHILD";

/**
 * On Node 20 a CA cannot be added at run time for every client (the Azure SDK's, jose's JWKS
 * fetch, the relay's WebSocket), so `--keyless` runs the stack in a child that trusts the local CA
 * through NODE_EXTRA_CA_CERTS, with no credential variable from the shell. The child has its own
 * process group: the parent forwards each stop signal exactly once, and the child stops when the
 * parent is gone (its IPC channel closes). Resolves with the child's exit code; undefined when
 * this process is that child already.
 */
export async function runKeylessChild(
  options: { host: string; stateDir: string },
  argv: readonly string[],
): Promise<number | undefined> {
  if (process.env[CHILD_MARK] === "1") return undefined;
  const tls = await localTls(options.stateDir, options.host);
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    detached: true,
    env: { ...scrubbedEnv(process.env), NODE_EXTRA_CA_CERTS: tls.caPath, [CHILD_MARK]: "1" },
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, forward(s)] as const);
  handlers.forEach(([s, h]) => process.on(s, h));
  return new Promise((done) =>
    child.once("exit", (code, signal) => {
      handlers.forEach(([s, h]) => process.off(s, h));
      done(code ?? (signal ? 128 + 2 : 1));
    }),
  );
}

/**
 * The stop signals of the keyless child: its own SIGINT/SIGTERM (forwarded by the parent) and the
 * parent's disappearance, which arrives as SIGTERM.
 */
export function keylessChildSignals(): Pick<EventEmitter, "once" | "off"> {
  if (process.env[CHILD_MARK] !== "1" || !process.send) return process;
  const signals = new EventEmitter();
  for (const name of ["SIGINT", "SIGTERM"] as const) process.on(name, () => signals.emit(name));
  process.once("disconnect", () => signals.emit("SIGTERM"));
  return signals;
}
