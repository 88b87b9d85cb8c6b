import { createHmac } from "node:crypto";

/**
 * The longest-lived control-plane SAS token the service accepts by default (and `devicestream sas`
 * mints): one year. A SAS cannot be revoked except by rotating its policy's key, so its lifetime
 * is bounded; a year still covers a yearly rotation of keys handed to scripts and gateways.
 * The control plane's `SERVICE_SAS_MAX_LIFETIME_SECONDS` changes it.
 */
export const MAX_SAS_TTL_SECONDS = 365 * 24 * 3600;

/**
 * IoT Hub-format shared access signatures for the control plane (minted here by clients and the
 * `devicestream sas` command, verified by shared/auth/sas.ts):
 *
 *   SharedAccessSignature sr=<enc resource>&sig=<enc b64 HMAC>&se=<expiry, epoch s>&skn=<enc policy>
 *
 * Convention (IoT Hub's, as in azure-iot-common and the IoT Hub security-token docs): the HMAC-SHA256,
 * keyed with the base64-decoded policy key, is computed over `<sr>\n<se>` where `<sr>` is the
 * URL-encoded resource exactly as it appears in the token. Verifying over the received bytes,
 * rather than a re-encoding of the decoded value, accepts every client's encoder (encodeURIComponent,
 * quote_plus, ...) as long as it signed what it sent. Resource and policy name are compared in
 * decoded form.
 */
export const SAS_SCHEME = "SharedAccessSignature";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict, canonical standard base64 (padding required, no whitespace, unused bits zero); undefined
 * when the text is not. Canonical, so that one signature has exactly one spelling.
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  if (text.length === 0 || !BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : undefined;
}

/** encodeURIComponent plus the characters it leaves alone but IoT Hub's encoder escapes. */
export function encodeUriComponentStrict(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export function sasSignature(key: Buffer, signedResource: string, expiry: number): Buffer {
  return createHmac("sha256", key).update(`${signedResource}\n${expiry}`).digest();
}

export interface MintSasTokenOptions {
  /** Our resource, e.g. the function app host name (`SERVICE_SAS_RESOURCE`). */
  resource: string;
  policyName: string;
  /** The policy's key, base64. */
  key: string;
  /** Give exactly one of expiresAt and ttlSeconds. */
  expiresAt?: Date;
  ttlSeconds?: number;
  /** Clock for ttlSeconds; defaults to now. */
  now?: Date;
}

/** Mints a control-plane SAS token (the CLI's `devicestream sas` wraps this). */
export function mintSasToken(options: MintSasTokenOptions): string {
  const { resource, policyName, key, expiresAt, ttlSeconds } = options;
  if (resource.length === 0) throw new TypeError("resource must not be empty");
  if (policyName.length === 0) throw new TypeError("policyName must not be empty");
  const keyBytes = decodeBase64Strict(key);
  if (keyBytes === undefined) throw new TypeError("key must be base64");
  if ((expiresAt === undefined) === (ttlSeconds === undefined)) {
    throw new TypeError("give exactly one of expiresAt and ttlSeconds");
  }
  let expiry: number;
  if (expiresAt !== undefined) {
    expiry = Math.floor(expiresAt.getTime() / 1000);
  } else {
    if (!Number.isInteger(ttlSeconds) || (ttlSeconds as number) <= 0) {
      throw new RangeError("ttlSeconds must be a positive integer");
    }
    expiry = Math.floor((options.now ?? new Date()).getTime() / 1000) + (ttlSeconds as number);
  }
  if (!Number.isSafeInteger(expiry) || expiry <= 0)
    throw new RangeError("expiry must be a positive epoch time");
  const sr = encodeUriComponentStrict(resource);
  const sig = encodeUriComponentStrict(sasSignature(keyBytes, sr, expiry).toString("base64"));
  return `${SAS_SCHEME} sr=${sr}&sig=${sig}&se=${expiry}&skn=${encodeUriComponentStrict(policyName)}`;
}
