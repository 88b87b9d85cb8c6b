/**
 * Which relay URLs a side may connect to. The relay URL arrives over the network (from the control
 * plane, or inside a direct method's payload), so a tampered URL must not make a side send its token
 * or its bytes elsewhere.
 */

/**
 * The device side: exactly one relay, this deployment's Web PubSub hub. Anyone who may invoke direct
 * methods can send the device an offer, so nothing here is a pattern or a default
 * (docs/threat-model.md).
 */
export interface RelayUrlPolicy {
  /**
   * The Web PubSub endpoint as `devicestream endpoints` prints it: `https://x.webpubsub.azure.com`,
   * or `http://127.0.0.1:8080` for the emulator. A relay URL must use its ws/wss counterpart and the
   * very same host and port.
   */
  endpoint: string;
  /** The hub name; compared case-insensitively, as Web PubSub treats hub names. */
  hub: string;
  /** Permit an `http://` endpoint (`ws://` relay): for local development against the emulator only. */
  allowInsecure?: boolean;
}

/**
 * The service side: the relay the control plane named in its answer (plus any host the caller adds).
 * The service already trusts the control plane it authenticated to, so it needs no hub pinning.
 */
export interface RelayHostPolicy {
  /** Host names (or `host:port`); `*.example.com` matches any subdomain. Compared case-insensitively. */
  allowedHosts: readonly string[];
  /** Permit `ws://`: for local development against the emulator only. */
  allowInsecure?: boolean;
}

export type RelayPolicy = RelayUrlPolicy | RelayHostPolicy;

export type RelayUrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

/** Web PubSub's hub name rule (docs: concept-client-protocols). */
const HUB_NAME = /^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$/;
const SECURE_COUNTERPART: Record<string, string> = { "https:": "wss:", "http:": "ws:" };

/**
 * Why a device-side policy cannot be used, or undefined when it can. A listener refuses to start
 * with a bad policy rather than refusing every offer later.
 */
export function relayUrlPolicyProblem(policy: Partial<RelayUrlPolicy> | undefined): string | undefined {
  if (!policy || typeof policy.endpoint !== "string" || policy.endpoint === "") {
    return "relay.endpoint must name this deployment's Web PubSub endpoint (devicestream endpoints prints it)";
  }
  if (typeof policy.hub !== "string" || !HUB_NAME.test(policy.hub)) {
    return "relay.hub must name this deployment's Web PubSub hub (devicestream endpoints prints it)";
  }
  let url: URL;
  try {
    url = new URL(policy.endpoint);
  } catch {
    return "relay.endpoint is not a valid URL";
  }
  if (!(url.protocol in SECURE_COUNTERPART)) return "relay.endpoint must be an https:// URL";
  if (url.hostname.includes("*")) return "relay.endpoint must name one host, not a pattern";
  if (url.protocol === "http:" && !policy.allowInsecure) {
    return "relay.endpoint is http://: allow an insecure relay only for a local emulator";
  }
  if (
    url.username ||
    url.password ||
    url.search ||
    url.hash ||
    (url.pathname !== "/" && url.pathname !== "")
  ) {
    return "relay.endpoint must be scheme://host[:port] only, without path, query or credentials";
  }
  return undefined;
}

function hostMatches(pattern: string, url: URL): boolean {
  const p = pattern.trim().toLowerCase();
  if (p.length === 0) return false;
  const hostname = url.hostname.toLowerCase();
  if (p.startsWith("*.")) return hostname.endsWith(p.slice(1)) && hostname.length > p.length - 1;
  return p === hostname || p === url.host.toLowerCase();
}

/**
 * The hub a Web PubSub client URL names, in either form the service accepts
 * (`/client/hubs/{hub}` or `/client/?hub={hub}`), or a reason. A URL that names a hub twice, or in
 * a spelling whose reading could differ between us and the service, is refused rather than guessed.
 */
function hubOf(url: URL): { hub: string } | { reason: string } {
  const hubParams = [...url.searchParams.keys()].filter((k) => k.toLowerCase() === "hub");
  const path = /^\/client\/hubs\/([^/]+)\/?$/.exec(url.pathname);
  if (path) {
    if (hubParams.length > 0) return { reason: "the relay URL names its hub twice" };
    let hub: string;
    try {
      hub = decodeURIComponent(path[1]!);
    } catch {
      return { reason: "the relay URL's hub is not valid" };
    }
    return { hub };
  }
  if (url.pathname === "/client" || url.pathname === "/client/") {
    if (hubParams.length !== 1 || hubParams[0] !== "hub") {
      return { reason: "the relay URL must name exactly one hub" };
    }
    return { hub: url.searchParams.get("hub")! };
  }
  return { reason: "the relay URL is not a Web PubSub client URL (/client/hubs/{hub} or /client/?hub=)" };
}

/** Checks a relay URL against a policy; the reason never repeats a query string (tokens live there). */
export function checkRelayUrl(raw: string, policy: RelayPolicy): RelayUrlCheck {
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
  if ("allowedHosts" in policy) {
    if (!policy.allowedHosts.some((p) => hostMatches(p, url))) {
      return { ok: false, reason: `relay host ${url.host} is not in the relay allowlist` };
    }
    return { ok: true, url };
  }
  const problem = relayUrlPolicyProblem(policy);
  if (problem) return { ok: false, reason: problem };
  const endpoint = new URL(policy.endpoint);
  if (url.protocol !== SECURE_COUNTERPART[endpoint.protocol] || url.host !== endpoint.host) {
    return {
      ok: false,
      reason: `relay ${shown} is not this device's relay ${SECURE_COUNTERPART[endpoint.protocol]}//${endpoint.host}`,
    };
  }
  if (url.hash) return { ok: false, reason: "the relay URL carries a fragment" };
  const hub = hubOf(url);
  if ("reason" in hub) return { ok: false, reason: hub.reason };
  // The offered hub name is not repeated: it came from whoever sent the offer.
  if (hub.hub.toLowerCase() !== policy.hub.toLowerCase()) {
    return { ok: false, reason: `the relay URL names another hub than this device's hub '${policy.hub}'` };
  }
  return { ok: true, url };
}
