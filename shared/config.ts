/**
 * The one configuration loader. Every setting the control plane reads is declared in SETTINGS,
 * validated once by `loadConfig(env)`, and returned as a frozen typed object. A bad start lists
 * every bad setting at once, so an operator fixes them in one go.
 *
 * Two modes: `azure` is keyless (endpoints + managed identity; connection strings are refused so
 * a key never sneaks into production), `local` uses connection strings for Azurite and the
 * emulators.
 */
import { z } from "zod";
import { type AuthConfig, authSettingsShape, toAuthConfig } from "./auth/config";
import { STRING_PROPERTY_MAX_UNITS } from "./store/limits";

export type Mode = "azure" | "local";

interface SettingSpec {
  description: string;
  /** Modes in which the setting must be present. */
  requiredIn: readonly Mode[];
  /** Local-development only: refused in azure mode. */
  localOnly?: boolean;
}

const intSetting = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const MAX_STREAMS_PER_DEVICE = 10_000;

const httpsUrl = z.url({ protocol: /^https$/, hostname: z.regexes.hostname });

/** Table, hub and method names as the services accept them. */
const tableName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/, "3-63 letters or digits, starting with a letter");
const hubName = z.string().regex(/^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$/, "a Web PubSub hub name");

export const SETTINGS = {
  DEPLOYMENT_MODE: {
    description: "`azure` (keyless, managed identity) or `local` (connection strings).",
    requiredIn: [],
  },
  AZURE_CLIENT_ID: { description: "Client id of the user-assigned managed identity.", requiredIn: ["azure"] },
  TABLES_ENDPOINT: {
    description: "Table service endpoint, https://<account>.table.core.windows.net.",
    requiredIn: ["azure"],
  },
  TABLES_CONNECTION_STRING: {
    description: "Table connection string (Azurite).",
    requiredIn: ["local"],
    localOnly: true,
  },
  TABLES_TABLE_NAME: { description: "Table holding stream records.", requiredIn: [] },
  WEBPUBSUB_ENDPOINT: {
    description: "Web PubSub endpoint, https://<name>.webpubsub.azure.com.",
    requiredIn: ["azure"],
  },
  WEBPUBSUB_CONNECTION_STRING: {
    description: "Web PubSub connection string (emulator).",
    requiredIn: ["local"],
    localOnly: true,
  },
  WEBPUBSUB_HUB: { description: "Web PubSub hub that carries the streams.", requiredIn: [] },
  IOTHUB_HOST_NAME: { description: "IoT Hub host name, <hub>.azure-devices.net.", requiredIn: ["azure"] },
  IOTHUB_CONNECTION_STRING: {
    description: "IoT Hub service connection string (emulator).",
    requiredIn: ["local"],
    localOnly: true,
  },
  IOTHUB_CA_FILE: {
    description: "PEM file of a CA to trust for IoT Hub (the emulator's).",
    requiredIn: [],
    localOnly: true,
  },
  IOTHUB_METHOD_NAME: { description: "Direct method invoked on the device.", requiredIn: [] },
  SERVICE_SAS_RESOURCE: { description: "The `sr` that service SAS tokens must carry.", requiredIn: [] },
  SERVICE_SAS_POLICIES: { description: "JSON array of SAS policies with keys and scopes.", requiredIn: [] },
  SERVICE_SAS_MAX_LIFETIME_SECONDS: {
    description: "Longest SAS lifetime accepted (se - now), seconds; default one year.",
    requiredIn: [],
  },
  ENTRA_TENANT_ID: { description: "Microsoft Entra tenant of the callers.", requiredIn: ["azure"] },
  ENTRA_AUDIENCE: { description: "Accepted token audiences, comma-separated.", requiredIn: ["azure"] },
  ENTRA_ROLES: { description: "JSON array of app roles with their scopes.", requiredIn: ["azure"] },
  ENTRA_AUTHORITY_HOST: { description: "Entra authority host.", requiredIn: [] },
  ENTRA_JWKS_URI: { description: "Override of the tenant JWKS URL.", requiredIn: [] },
  ENTRA_ISSUER: { description: "Override of the accepted token issuer.", requiredIn: [] },
  RELAY_EVENTS_ALLOWED_ORIGINS: {
    description: "Web PubSub hosts allowed to call the event handler.",
    requiredIn: ["azure"],
  },
  RELAY_EVENTS_PRINCIPAL_ID: {
    description: "Object id of the identity Web PubSub calls us with.",
    requiredIn: ["azure"],
  },
  RELAY_EVENTS_AUDIENCE: {
    description:
      "Accepted audiences of the token Web PubSub sends, comma-separated: the App ID URI (v1 tokens) and the client id (v2 tokens).",
    requiredIn: ["azure"],
  },
  STREAMS_MAX_PER_DEVICE: { description: "Concurrent streams per device identity.", requiredIn: [] },
  STREAMS_MAX_PER_CALLER: {
    description:
      "Concurrent streams one caller may hold on one device (default: half of STREAMS_MAX_PER_DEVICE, rounded up); a SAS policy or app role may set its own maxStreamsPerDevice.",
    requiredIn: [],
  },
  STREAMS_MAX_DATA_BYTES: {
    description: "Largest request `data`, in UTF-8 bytes of its JSON text (at most 32768).",
    requiredIn: [],
  },
  STREAMS_MAX_LIFETIME_SECONDS: {
    description: "Maximum stream lifetime (default 12 h); 0 = unlimited.",
    requiredIn: [],
  },
  STREAMS_RETENTION_HOURS: { description: "How long closed stream records are kept.", requiredIn: [] },
  RELAY_TOKEN_MINUTES: { description: "Lifetime of relay tokens, whole minutes.", requiredIn: [] },
  LOG_LEVEL: { description: "debug, info, warn or error.", requiredIn: [] },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

/**
 * Settings the Functions platform reads itself. Listed so the infra check can tell a platform
 * setting from a typo in ours.
 */
export const PLATFORM_SETTINGS: readonly string[] = [
  "FUNCTIONS_EXTENSION_VERSION",
  "FUNCTIONS_WORKER_RUNTIME",
  "AzureWebJobsStorage",
  "AzureWebJobsStorage__accountName",
  "AzureWebJobsStorage__credential",
  "AzureWebJobsStorage__clientId",
  "AzureWebJobsStorage__blobServiceUri",
  "AzureWebJobsStorage__queueServiceUri",
  "AzureWebJobsStorage__tableServiceUri",
  "APPLICATIONINSIGHTS_CONNECTION_STRING",
  "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
  "WEBSITE_RUN_FROM_PACKAGE",
  "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
];

export function configSettings(): {
  name: SettingName;
  requiredIn: readonly Mode[];
  localOnly: boolean;
  description: string;
}[] {
  return (Object.keys(SETTINGS) as SettingName[]).map((name) => {
    const spec: SettingSpec = SETTINGS[name];
    return {
      name,
      requiredIn: spec.requiredIn,
      localOnly: spec.localOnly === true,
      description: spec.description,
    };
  });
}

const schema = z.object({
  ...authSettingsShape,
  DEPLOYMENT_MODE: z.enum(["azure", "local"]).default("local"),
  AZURE_CLIENT_ID: z.string().min(1).optional(),
  TABLES_ENDPOINT: httpsUrl.optional(),
  TABLES_CONNECTION_STRING: z.string().min(1).optional(),
  TABLES_TABLE_NAME: tableName.default("streams"),
  WEBPUBSUB_ENDPOINT: httpsUrl.optional(),
  WEBPUBSUB_CONNECTION_STRING: z
    .string()
    .regex(/(^|;)\s*Endpoint=/i, "must contain Endpoint=")
    .regex(/(^|;)\s*AccessKey=/i, "must contain AccessKey=")
    .optional(),
  WEBPUBSUB_HUB: hubName.default("streams"),
  // An optional port, for the local emulator (`npm start -- --keyless`); Azure hubs have none.
  IOTHUB_HOST_NAME: z
    .string()
    .regex(
      /^[A-Za-z0-9.-]+(:(6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3}))?$/,
      "a host name such as myhub.azure-devices.net, optionally with :port",
    )
    .optional(),
  IOTHUB_CONNECTION_STRING: z
    .string()
    .regex(/(^|;)\s*HostName=/i, "must contain HostName=")
    .regex(/(^|;)\s*SharedAccessKey=/i, "must contain SharedAccessKey=")
    .optional(),
  IOTHUB_CA_FILE: z.string().min(1).optional(),
  IOTHUB_METHOD_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,100}$/, "letters, digits, '_' or '-'")
    .default("deviceStream"),
  STREAMS_MAX_PER_DEVICE: intSetting(1, MAX_STREAMS_PER_DEVICE, 32),
  STREAMS_MAX_PER_CALLER: z.coerce.number().int().min(1).max(MAX_STREAMS_PER_DEVICE).optional(),
  // The record stores the data as a table string property, at most 32,768 UTF-16 code units. A
  // code unit is at least one UTF-8 byte, so a byte bound of at most that is also a unit bound.
  STREAMS_MAX_DATA_BYTES: intSetting(0, STRING_PROPERTY_MAX_UNITS, 4096),
  // 12 h, AWS IoT secure tunneling's default tunnel lifetime.
  STREAMS_MAX_LIFETIME_SECONDS: intSetting(0, 31 * 24 * 3600, 12 * 3600),
  STREAMS_RETENTION_HOURS: intSetting(0, 24 * 366, 168),
  RELAY_TOKEN_MINUTES: intSetting(1, 60, 2),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

type Raw = z.infer<typeof schema>;

export interface Config {
  mode: Mode;
  tables: { tableName: string } & ({ connectionString: string } | { endpoint: string });
  webPubSub: { hub: string } & ({ connectionString: string } | { endpoint: string });
  iotHub: { methodName: string } & ({ connectionString: string; caFile?: string } | { hostName: string });
  managedIdentityClientId?: string;
  streams: {
    maxPerDevice: number;
    /** Default per caller and device; SAS policies and app roles may override it. */
    maxPerCaller: number;
    maxDataBytes: number;
    /** 0 = unlimited. Every SSH session sharing a stream ends with it, so keep it in hours. */
    maxLifetimeSeconds: number;
    retentionHours: number;
    relayTokenMinutes: number;
  };
  logLevel: Raw["LOG_LEVEL"];
  auth: AuthConfig;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/** Empty strings count as unset: app settings and .env files often carry `NAME=`. */
function pickSettings(env: NodeJS.ProcessEnv): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of Object.keys(SETTINGS)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== "") picked[name] = value.trim();
  }
  return picked;
}

function modeProblems(mode: Mode, present: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const { name, requiredIn, localOnly } of configSettings()) {
    if (requiredIn.includes(mode) && present[name] === undefined) {
      problems.push(`${name}: required when DEPLOYMENT_MODE=${mode} (${SETTINGS[name].description})`);
    }
    if (localOnly && mode === "azure" && present[name] !== undefined) {
      problems.push(
        `${name}: not allowed when DEPLOYMENT_MODE=azure; Azure mode is keyless (use the endpoint setting)`,
      );
    }
  }
  return problems;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const present = pickSettings(env);
  const parsed = schema.safeParse(present);
  // Presence is checked even when a value is malformed, so one start lists every problem.
  const mode: Mode = present.DEPLOYMENT_MODE === "azure" ? "azure" : "local";
  const problems = [
    ...(parsed.success
      ? []
      : parsed.error.issues.map((i) => `${i.path.join(".") || "(config)"}: ${i.message}`)),
    ...modeProblems(mode, present),
  ];
  if (!parsed.success) throw new ConfigError(problems);
  const raw = parsed.data;
  const auth = toAuthConfig(raw);
  if (!auth.ok) problems.push(...auth.problems);
  if (problems.length > 0 || !auth.ok) throw new ConfigError(problems);

  const azure = raw.DEPLOYMENT_MODE === "azure";
  // modeProblems guarantees presence of the mode's required settings; `!` states that, not a guess.
  const config: Config = {
    mode: raw.DEPLOYMENT_MODE,
    tables: azure
      ? { tableName: raw.TABLES_TABLE_NAME, endpoint: raw.TABLES_ENDPOINT! }
      : { tableName: raw.TABLES_TABLE_NAME, connectionString: raw.TABLES_CONNECTION_STRING! },
    webPubSub: azure
      ? { hub: raw.WEBPUBSUB_HUB, endpoint: raw.WEBPUBSUB_ENDPOINT! }
      : { hub: raw.WEBPUBSUB_HUB, connectionString: raw.WEBPUBSUB_CONNECTION_STRING! },
    iotHub: azure
      ? { methodName: raw.IOTHUB_METHOD_NAME, hostName: raw.IOTHUB_HOST_NAME! }
      : {
          methodName: raw.IOTHUB_METHOD_NAME,
          connectionString: raw.IOTHUB_CONNECTION_STRING!,
          ...(raw.IOTHUB_CA_FILE ? { caFile: raw.IOTHUB_CA_FILE } : {}),
        },
    ...(raw.AZURE_CLIENT_ID ? { managedIdentityClientId: raw.AZURE_CLIENT_ID } : {}),
    streams: {
      maxPerDevice: raw.STREAMS_MAX_PER_DEVICE,
      maxPerCaller: raw.STREAMS_MAX_PER_CALLER ?? Math.ceil(raw.STREAMS_MAX_PER_DEVICE / 2),
      maxDataBytes: raw.STREAMS_MAX_DATA_BYTES,
      maxLifetimeSeconds: raw.STREAMS_MAX_LIFETIME_SECONDS,
      retentionHours: raw.STREAMS_RETENTION_HOURS,
      relayTokenMinutes: raw.RELAY_TOKEN_MINUTES,
    },
    logLevel: raw.LOG_LEVEL,
    auth: auth.config,
  };
  return Object.freeze(config);
}
