/**
 * Who the emulated hub is: its name, the host names a SAS resource (`sr`) may name, and the one
 * service policy. The policy key is public on purpose, like Azurite's well-known account key.
 */

/** DEVELOPMENT ONLY. Published in docs/iothub-emulator.md; never configure a real hub with it. */
export const DEV_POLICY = {
  name: "iothubowner",
  key: "yU5AUoSprLMnjkvFtsJOCZB/u/OcNp9Qrnv7i0Ive0k=",
} as const;

export const DEFAULT_HUB_NAME = "devicestreams";

/** Hub names as Azure allows them: 3-50 letters, digits and hyphens. */
export function isValidHubName(name: string): boolean {
  return /^[A-Za-z0-9-]{3,50}$/.test(name);
}

/** The address clients should dial: a wildcard bind is reachable as localhost. */
export function dialableHost(bindHost: string): string {
  if (bindHost === "0.0.0.0" || bindHost === "::" || bindHost === "") return "localhost";
  return bindHost.includes(":") ? `[${bindHost}]` : bindHost;
}

export class HubHosts {
  /** The name devices put in `HostName`, `sr` and the MQTT username, as on Azure. */
  readonly hubHostName: string;
  private readonly accepted: Set<string>;

  constructor(hubName: string, bindHost: string) {
    this.hubHostName = `${hubName}.azure-devices.net`.toLowerCase();
    const dialable = dialableHost(bindHost).replace(/^\[(.*)\]$/, "$1");
    this.accepted = new Set([this.hubHostName, "localhost", "127.0.0.1", "::1", dialable.toLowerCase()]);
  }

  /**
   * Whether `authority` (a host, optionally with ":port") names this hub. Local service connection
   * strings carry the REST port in HostName, so a port is allowed and not significant.
   */
  accepts(authority: string): boolean {
    const lower = authority.toLowerCase();
    const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(lower);
    if (bracketed?.[1] !== undefined) return this.accepted.has(bracketed[1]);
    const host = /^([^:]+)(?::\d+)?$/.exec(lower)?.[1];
    return host !== undefined && this.accepted.has(host);
  }
}
