import type { TokenCredential } from "@azure/core-auth";
import { mintSasToken } from "../../../common/sas";

/** A control-plane SAS policy: its name and base64 key. */
export interface SasKeyCredential {
  policyName: string;
  key: string;
}

export type StreamsCredential = SasKeyCredential | TokenCredential;

/** Produces the Authorization header value for each request. */
export type AuthorizationSource = (abortSignal?: AbortSignal) => Promise<string>;

const SAS_TTL_SECONDS = 3600;
/** Renew this long before expiry, so a slow request never carries an expired token. */
const RENEW_MARGIN_MS = 5 * 60_000;

export function isTokenCredential(c: StreamsCredential): c is TokenCredential {
  return typeof (c as Partial<TokenCredential>).getToken === "function";
}

export function authorizationSource(
  credential: StreamsCredential,
  options: { sasResource: string; scopes?: string | string[]; now?: () => number },
): AuthorizationSource {
  const now = options.now ?? Date.now;
  if (isTokenCredential(credential)) {
    const scopes = options.scopes;
    if (!scopes || scopes.length === 0) {
      throw new TypeError("a TokenCredential needs the control plane's scope (option tokenScopes)");
    }
    return async (abortSignal) => {
      const token = await credential.getToken(scopes, abortSignal ? { abortSignal } : {});
      if (!token) throw new Error("the credential returned no token");
      return `Bearer ${token.token}`;
    };
  }
  let cached: { header: string; expiresAt: number } | undefined;
  return async () => {
    if (!cached || cached.expiresAt - now() < RENEW_MARGIN_MS) {
      const expiresAt = now() + SAS_TTL_SECONDS * 1000;
      cached = {
        header: mintSasToken({
          resource: options.sasResource,
          policyName: credential.policyName,
          key: credential.key,
          expiresAt: new Date(expiresAt),
        }),
        expiresAt,
      };
    }
    return cached.header;
  };
}
