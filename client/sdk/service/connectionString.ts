import { StreamsError } from "./errors";

export interface ParsedConnectionString {
  endpoint: string;
  policyName: string;
  key: string;
  /** `SasResource=`, the `sr` the control plane expects, when it is not the endpoint's host name. */
  sasResource?: string;
}

/**
 * `Endpoint=https://...;SharedAccessKeyName=<policy>;SharedAccessKey=<base64>[;SasResource=<host>]`.
 * Keys are case-insensitive, as in Azure's connection strings; values may contain `=`.
 */
export function parseConnectionString(text: string): ParsedConnectionString {
  const fields = new Map<string, string>();
  for (const part of text.split(";")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw invalid(`'${part.split("=")[0]}' is not a Key=value pair`);
    fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const endpoint = fields.get("endpoint");
  const policyName = fields.get("sharedaccesskeyname");
  const key = fields.get("sharedaccesskey");
  const missing = [
    endpoint ? "" : "Endpoint",
    policyName ? "" : "SharedAccessKeyName",
    key ? "" : "SharedAccessKey",
  ].filter(Boolean);
  if (missing.length > 0) throw invalid(`missing ${missing.join(", ")}`);
  try {
    const url = new URL(endpoint!);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error();
  } catch {
    throw invalid("Endpoint must be an http(s) URL");
  }
  const sasResource = fields.get("sasresource");
  return { endpoint: endpoint!, policyName: policyName!, key: key!, ...(sasResource ? { sasResource } : {}) };
}

function invalid(why: string): StreamsError {
  return new StreamsError(
    "InvalidConnectionString",
    `invalid control-plane connection string: ${why} (expected Endpoint=...;SharedAccessKeyName=...;SharedAccessKey=...)`,
  );
}
