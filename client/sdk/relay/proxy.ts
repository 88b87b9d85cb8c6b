import type { Agent } from "node:http";

function bypassed(host: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const h = host.toLowerCase();
  return noProxy
    .split(",")
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e.length > 0)
    .some((e) => e === "*" || h === e.replace(/^\./, "") || h.endsWith(e.startsWith(".") ? e : `.${e}`));
}

/**
 * The agent for a relay (or any WebSocket) connection from HTTPS_PROXY / https_proxy, honouring
 * NO_PROXY (matched against the URL's host name, not its port); undefined when no proxy applies.
 * The proxy sees only a CONNECT to the relay's host:port: TLS (and the Bearer token inside it) runs
 * end to end through the tunnel. A ws:// URL (local development) is tunnelled the same way, with
 * the WebSocket in clear inside the tunnel; HTTP_PROXY is not consulted for it.
 */
export function proxyAgentFor(target: URL, env: NodeJS.ProcessEnv = process.env): Agent | undefined {
  const proxy = env.HTTPS_PROXY ?? env.https_proxy;
  if (!proxy || bypassed(target.hostname, env.NO_PROXY ?? env.no_proxy)) return undefined;
  // Loaded only when a proxy applies: it (with agent-base and debug) is a tenth of `connect`'s
  // start-up, and most hosts, the agent's device included, have no proxy.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { HttpsProxyAgent } = require("https-proxy-agent") as typeof import("https-proxy-agent");
  return new HttpsProxyAgent(proxy);
}
