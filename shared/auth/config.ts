/**
 * The authentication settings: a zod fragment over environment variables that the lead's
 * `loadConfig(env)` composes. `authSettingsShape` validates each variable on its own (messages name
 * the policy or role and its field, never a key value); `toAuthConfig` adds the cross-setting
 * rules and resolves Entra endpoints.
 */
import { z } from "zod";
import { compileDevicePattern, compileGlob } from "./glob";
import { entraEndpoints, type EntraEndpoints, DEFAULT_AUTHORITY_HOST } from "./jwt";
import { ACTIONS } from "./principal";
import { MAX_SAS_TTL_SECONDS } from "../../common/sas";
import { decodeBase64Strict, isIotHubResource, MIN_SAS_KEY_BYTES } from "./sas";
import { isLoopbackHost } from "../../common/loopback";

/** Local development signs for `localhost`; in Azure this is the function app's host name. */
export const DEFAULT_SAS_RESOURCE = "localhost";

function patternSchema(compile: (p: string) => unknown) {
  return z.string().superRefine((pattern, ctx) => {
    try {
      compile(pattern);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : "invalid pattern" });
    }
  });
}

const grantFields = {
  devices: z.array(patternSchema(compileDevicePattern)).min(1, "list at least one device pattern"),
  streams: z.array(patternSchema(compileGlob)).min(1, 'list at least one stream name (or "*")'),
  actions: z
    .array(z.enum(ACTIONS))
    .min(1, "list at least one action, or leave actions out for all")
    .optional(),
  /** Overrides STREAMS_MAX_PER_CALLER for callers with this grant (a gateway serving many users). */
  maxStreamsPerDevice: z.number().int().min(1).max(10_000).optional(),
};

const sasKey = z
  .string()
  .refine(
    (k) => (decodeBase64Strict(k)?.length ?? 0) >= MIN_SAS_KEY_BYTES,
    `must be base64 of at least ${MIN_SAS_KEY_BYTES} bytes`,
  );

export const sasPolicySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "1-64 letters, digits, '.', '_' or '-'"),
  primaryKey: sasKey,
  secondaryKey: sasKey.optional(),
  ...grantFields,
});
export type SasPolicyConfig = z.infer<typeof sasPolicySchema>;

export const entraRoleSchema = z.strictObject({
  role: z.string().min(1, "must not be empty"),
  ...grantFields,
});
export type EntraRoleConfig = z.infer<typeof entraRoleSchema>;

/**
 * A JSON array setting whose entries are checked one by one, so that each message names its
 * entry: `policy 'ops' (#2): primaryKey: must be base64 of at least 32 bytes`.
 */
function jsonList<T>(kind: string, key: string, entry: z.ZodType<T>) {
  return z.string().transform((text, ctx): T[] => {
    const fail = (message: string) => ctx.issues.push({ code: "custom", message, input: text });
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      fail("is not valid JSON");
      return z.NEVER;
    }
    if (!Array.isArray(data)) {
      fail(`must be a JSON array of ${kind} objects`);
      return z.NEVER;
    }
    const items: T[] = [];
    const seen = new Set<unknown>();
    let failed = false;
    data.forEach((raw: unknown, index) => {
      const id = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>)[key] : undefined;
      const label =
        typeof id === "string" && id.length > 0 ? `${kind} '${id}' (#${index})` : `${kind} #${index}`;
      const result = entry.safeParse(raw);
      if (!result.success) {
        for (const issue of result.error.issues) {
          const field = issue.path.map(String).join(".");
          fail(`${label}: ${field ? `${field}: ` : ""}${issue.message}`);
        }
        failed = true;
        return;
      }
      if (seen.has(id)) {
        fail(`${label}: ${key} '${String(id)}' appears more than once`);
        failed = true;
      }
      seen.add(id);
      items.push(result.data);
    });
    return failed ? z.NEVER : items;
  });
}

const commaList = z.string().transform((text) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

/** https, or http to a loopback address (tests and local emulators). */
const keysUrl = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname));
  } catch {
    return false;
  }
}, "must be an https URL (http only for localhost)");

/** One entry per environment variable; names are part of the deployment contract. */
export const authSettingsShape = {
  SERVICE_SAS_RESOURCE: z
    .string()
    .min(1)
    .refine((r) => !isIotHubResource(r), "must be this service's host name, never an IoT Hub's")
    .default(DEFAULT_SAS_RESOURCE),
  SERVICE_SAS_POLICIES: jsonList("policy", "name", sasPolicySchema).optional(),
  SERVICE_SAS_MAX_LIFETIME_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(10 * MAX_SAS_TTL_SECONDS)
    .default(MAX_SAS_TTL_SECONDS),
  ENTRA_TENANT_ID: z.guid("must be the tenant's id (a GUID)").optional(),
  ENTRA_AUDIENCE: commaList.optional(),
  ENTRA_ROLES: jsonList("role", "role", entraRoleSchema).optional(),
  ENTRA_AUTHORITY_HOST: keysUrl.default(DEFAULT_AUTHORITY_HOST),
  ENTRA_JWKS_URI: keysUrl.optional(),
  ENTRA_ISSUER: z.string().min(1).optional(),
  RELAY_EVENTS_ALLOWED_ORIGINS: commaList.optional(),
  RELAY_EVENTS_PRINCIPAL_ID: z.guid("must be an object or client id (a GUID)").optional(),
  RELAY_EVENTS_AUDIENCE: commaList.optional(),
};

export const authSettingsSchema = z.object(authSettingsShape);
export type AuthSettings = z.infer<typeof authSettingsSchema>;

export interface EntraConfig {
  readonly tenantId: string;
  readonly audiences: readonly string[];
  readonly roles: readonly EntraRoleConfig[];
  readonly endpoints: EntraEndpoints;
}

export interface RelayEventsConfig {
  /** Hosts accepted in `WebHook-Request-Origin`. Empty: the lead adds the Web PubSub endpoint's host. */
  readonly allowedOrigins: readonly string[];
  /** Keyless Web PubSub (auth type ManagedIdentity): whose token to accept, for which audience. */
  readonly managedIdentity?: {
    readonly principalId: string;
    readonly audiences: readonly string[];
    readonly endpoints: EntraEndpoints;
  };
}

export interface AuthConfig {
  readonly sas: {
    readonly resource: string;
    readonly policies: readonly SasPolicyConfig[];
    /** Longest accepted remaining lifetime of a token, seconds. */
    readonly maxLifetimeSeconds: number;
  };
  /** Absent when Entra ID callers are not configured (no ENTRA_AUDIENCE). */
  readonly entra?: EntraConfig;
  readonly relayEvents: RelayEventsConfig;
}

export type AuthConfigResult =
  { readonly ok: true; readonly config: AuthConfig } | { readonly ok: false; readonly problems: string[] };

/** Cross-setting rules on top of the per-variable checks; problems read `NAME: message`. */
export function toAuthConfig(s: AuthSettings): AuthConfigResult {
  const problems: string[] = [];
  const policies = s.SERVICE_SAS_POLICIES ?? [];
  const audiences = s.ENTRA_AUDIENCE ?? [];
  const roles = s.ENTRA_ROLES ?? [];
  const relayAudiences = s.RELAY_EVENTS_AUDIENCE ?? [];
  const tenantId = s.ENTRA_TENANT_ID;
  const entraWanted = audiences.length > 0 || roles.length > 0;
  const miWanted = s.RELAY_EVENTS_PRINCIPAL_ID !== undefined || relayAudiences.length > 0;

  if (entraWanted) {
    if (audiences.length === 0) problems.push("ENTRA_AUDIENCE: required when ENTRA_ROLES is set");
    if (roles.length === 0) {
      problems.push("ENTRA_ROLES: required when ENTRA_AUDIENCE is set (no role, no access)");
    }
  }
  if (miWanted) {
    if (s.RELAY_EVENTS_PRINCIPAL_ID === undefined) {
      problems.push(
        "RELAY_EVENTS_PRINCIPAL_ID: required when RELAY_EVENTS_AUDIENCE is set (issuer and audience alone do not identify Web PubSub)",
      );
    }
    if (relayAudiences.length === 0) {
      problems.push("RELAY_EVENTS_AUDIENCE: required when RELAY_EVENTS_PRINCIPAL_ID is set");
    }
  }
  if ((entraWanted || miWanted) && tenantId === undefined) {
    problems.push(
      "ENTRA_TENANT_ID: required for Entra ID tokens (ENTRA_AUDIENCE or RELAY_EVENTS_PRINCIPAL_ID)",
    );
  }
  if (tenantId !== undefined && !entraWanted && !miWanted) {
    problems.push("ENTRA_TENANT_ID: set, but neither ENTRA_AUDIENCE nor RELAY_EVENTS_PRINCIPAL_ID uses it");
  }
  if (policies.length === 0 && !entraWanted) {
    problems.push(
      "SERVICE_SAS_POLICIES: no service authentication is configured; set SAS policies and/or ENTRA_AUDIENCE with ENTRA_ROLES",
    );
  }
  if (problems.length > 0) return { ok: false, problems };

  const endpoints =
    tenantId === undefined
      ? undefined
      : entraEndpoints({
          tenantId,
          authorityHost: s.ENTRA_AUTHORITY_HOST,
          jwksUri: s.ENTRA_JWKS_URI,
          issuer: s.ENTRA_ISSUER,
        });
  const principalId = s.RELAY_EVENTS_PRINCIPAL_ID;
  const config: AuthConfig = {
    sas: {
      resource: s.SERVICE_SAS_RESOURCE,
      policies,
      maxLifetimeSeconds: s.SERVICE_SAS_MAX_LIFETIME_SECONDS,
    },
    ...(entraWanted && tenantId !== undefined && endpoints !== undefined
      ? { entra: { tenantId, audiences, roles, endpoints } }
      : {}),
    relayEvents: {
      allowedOrigins: s.RELAY_EVENTS_ALLOWED_ORIGINS ?? [],
      ...(principalId !== undefined && endpoints !== undefined
        ? { managedIdentity: { principalId, audiences: relayAudiences, endpoints } }
        : {}),
    },
  };
  return { ok: true, config };
}

/**
 * Standalone parse of the auth settings (the lead's loader may instead merge `authSettingsShape`
 * into its own schema and call `toAuthConfig`). Empty values count as unset.
 */
export function parseAuthConfig(env: Record<string, string | undefined>): AuthConfigResult {
  const present = Object.fromEntries(
    Object.keys(authSettingsShape).flatMap((name) => {
      const value = env[name]?.trim();
      return value ? [[name, value]] : [];
    }),
  );
  const parsed = authSettingsSchema.safeParse(present);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => `${i.path.map(String).join(".")}: ${i.message}`),
    };
  }
  return toAuthConfig(parsed.data);
}
