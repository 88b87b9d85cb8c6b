import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * IoT Hub shared access signatures:
 * `SharedAccessSignature sr=<resource>&sig=<urlenc(b64(HMAC-SHA256(key, sr + "\n" + se)))>&se=<epoch s>[&skn=<policy>]`.
 * The HMAC covers `sr` exactly as it appears in the token (devices URL-encode it, the service SDK
 * does not), so it is verified on the raw text and only decoded to compare resources.
 */
export interface ParsedSas {
  /** `sr` as received (signed form). */
  rawResource: string;
  /** `sr` URL-decoded, for comparing with the expected resource. */
  resource: string;
  signature: Buffer;
  expiry: number;
  keyName?: string;
}

export class SasError extends Error {
  override readonly name = "SasError";
}

const PREFIX = "SharedAccessSignature ";

function decode(value: string, field: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new SasError(`the token's ${field} is not valid URL encoding`);
  }
}

export function parseSas(token: string): ParsedSas {
  if (!token.startsWith(PREFIX)) throw new SasError("not a SharedAccessSignature token");
  const fields = new Map<string, string>();
  for (const part of token.slice(PREFIX.length).trim().split("&")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new SasError("malformed token field");
    const name = part.slice(0, eq);
    if (fields.has(name)) throw new SasError(`duplicate token field '${name}'`);
    fields.set(name, part.slice(eq + 1));
  }
  const sr = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  if (!sr || !sig || !se) throw new SasError("the token needs sr, sig and se");
  if (!/^\d{1,12}$/.test(se)) throw new SasError("the token's se is not an epoch time in seconds");
  const signature = Buffer.from(decode(sig, "sig"), "base64");
  if (signature.length !== 32) throw new SasError("the token's sig is not an HMAC-SHA256 value");
  const skn = fields.get("skn");
  return {
    rawResource: sr,
    resource: decode(sr, "sr"),
    signature,
    expiry: Number(se),
    ...(skn === undefined ? {} : { keyName: decode(skn, "skn") }),
  };
}

export function signSas(rawResource: string, expiry: number, base64Key: string): Buffer {
  return createHmac("sha256", Buffer.from(base64Key, "base64")).update(`${rawResource}\n${expiry}`).digest();
}

/**
 * Checks expiry and that one of `keys` (primary, secondary) signed the token. Every key is tried,
 * each comparison in constant time.
 */
export function verifySas(sas: ParsedSas, keys: readonly string[], nowMs = Date.now()): void {
  if (sas.expiry * 1000 <= nowMs) throw new SasError("the token has expired");
  let matched = false;
  for (const key of keys) {
    if (timingSafeEqual(signSas(sas.rawResource, sas.expiry, key), sas.signature)) matched = true;
  }
  if (!matched) throw new SasError("the token's signature does not match");
}
