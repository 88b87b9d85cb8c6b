/**
 * Which relay URLs a side may connect to. The relay URL arrives over the network (from the control
 * plane, or inside a direct method's payload), so a tampered URL must not make a side send its token
 * or its bytes elsewhere.
 */
export interface RelayUrlPolicy {
  /**
   * Host names (or `host:port`) the relay may be on; `*.example.com` matches any subdomain. Compared
   * case-insensitively.
   */
  allowedHosts: readonly string[];
  /** Permit `ws://`: for local development against the emulator only. */
  allowInsecure?: boolean;
}

export type RelayUrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

function hostMatches(pattern: string, url: URL): boolean {
  const p = pattern.trim().toLowerCase();
  if (p.length === 0) return false;
  const hostname = url.hostname.toLowerCase();
  if (p.startsWith("*.")) return hostname.endsWith(p.slice(1)) && hostname.length > p.length - 1;
  return p === hostname || p === url.host.toLowerCase();
}

/** Checks a relay URL against a policy; the reason never repeats a query string (tokens live there). */
export function checkRelayUrl(raw: string, policy: RelayUrlPolicy): RelayUrlCheck {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "the relay URL is not a valid URL" };
  }
  const shown = `${url.protocol}//${url.host}`;
  if (url.username || url.password) return { ok: false, reason: `relay URL ${shown} carries credentials` };
  if (url.protocol === "ws:") {
    if (!policy.allowInsecure) {
      return {
        ok: false,
        reason: `relay URL ${shown} is not encrypted (ws://); allow it only for local development`,
      };
    }
  } else if (url.protocol !== "wss:") {
    return { ok: false, reason: `relay URL scheme ${url.protocol} is not wss:` };
  }
  if (!policy.allowedHosts.some((p) => hostMatches(p, url))) {
    return { ok: false, reason: `relay host ${url.host} is not in the relay allowlist` };
  }
  return { ok: true, url };
}
