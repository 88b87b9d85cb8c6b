/**
 * The CLI's Entra ID credential. Against a local authority (the local Entra ID of
 * `npm start -- --keyless`, named by AZURE_AUTHORITY_HOST) it builds `ClientSecretCredential` with
 * `disableInstanceDiscovery` itself: no environment variable sets that, and without it MSAL asks
 * the public cloud for instance metadata, which fails offline. Otherwise `DefaultAzureCredential`.
 */
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import type { TokenCredential } from "@azure/core-auth";
import { UsageError } from "./args";

/** Microsoft's own authority hosts: instance discovery works there, so the default chain applies. */
const CLOUD_AUTHORITIES =
  /(^|\.)(microsoftonline\.(com|us|de)|chinacloudapi\.cn|microsoftonline\.microsoft\.scloud)$/i;

export const ENTRA_CA_FILE_VAR = "DEVICESTREAM_ENTRA_CA_FILE";

/**
 * @azure/identity is an optional peer of the client package (docs/decisions.md §3): a device or a
 * SAS-key caller never needs it, and it is the largest dependency. Loaded on first use, and its
 * absence is a configuration problem with a fix, not a crash.
 */
async function loadIdentity() {
  try {
    return await import("@azure/identity");
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    // Only the package itself missing (the ESM loader's code, or CommonJS's); a broken install
    // inside it keeps its own error.
    const notFound = code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
    if (!notFound || !message.includes("'@azure/identity'")) throw e;
    throw new UsageError(
      "Entra ID sign-in (--endpoint/--scope) needs the optional package @azure/identity: install it " +
        "beside the client (`npm install -g @azure/identity` for a global install), or use a connection string",
    );
  }
}

export async function cliCredential(get: (name: string) => string | undefined): Promise<TokenCredential> {
  const identity = await loadIdentity();
  const authorityHost = get("AZURE_AUTHORITY_HOST");
  let host: string | undefined;
  try {
    host = authorityHost ? new URL(authorityHost).hostname : undefined;
  } catch {
    throw new UsageError(`AZURE_AUTHORITY_HOST is not a URL: '${authorityHost ?? ""}'`);
  }
  if (host === undefined || CLOUD_AUTHORITIES.test(host)) return new identity.DefaultAzureCredential();
  const [tenant, clientId, secret] = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"].map(get);
  if (!tenant || !clientId || !secret) {
    throw new UsageError(
      "a local authority (AZURE_AUTHORITY_HOST) needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
    );
  }
  const ca = localCa(get);
  return new identity.ClientSecretCredential(tenant, clientId, secret, {
    authorityHost: authorityHost!,
    disableInstanceDiscovery: true,
    ...(ca ? { tlsOptions: { ca } } : {}),
  });
}

/** The local stack's CA (DEVICESTREAM_ENTRA_CA_FILE), if one is named. */
function localCa(get: (name: string) => string | undefined): string | undefined {
  const caFile = get(ENTRA_CA_FILE_VAR);
  try {
    return caFile ? readFileSync(caFile, "utf8") : undefined;
  } catch {
    throw new UsageError(`${ENTRA_CA_FILE_VAR}: cannot read '${caFile ?? ""}'`);
  }
}

/**
 * The keyless local stack serves its relay (the Web PubSub emulator) over WSS with the same local
 * CA as its authority: relay WebSockets trust it through this agent. Undefined without a CA file,
 * so HTTPS_PROXY keeps applying to real relays.
 */
export function localRelayAgent(get: (name: string) => string | undefined): Agent | undefined {
  const ca = localCa(get);
  return ca ? new Agent({ ca, keepAlive: false }) : undefined;
}
