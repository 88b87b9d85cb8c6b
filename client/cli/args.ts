/**
 * Argument parsing as pure functions (docs/cli.md): each takes the text the user typed and returns a
 * value, or throws a UsageError whose message says what was expected.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface HostPort {
  host: string;
  port: number;
}

export interface StreamMapping {
  name: string;
  target: HostPort;
}

const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export function parsePort(text: string, what = "port"): number {
  if (!/^\d{1,5}$/.test(text))
    throw new UsageError(`${what} must be a number from 0 to 65535, got '${text}'`);
  const port = Number(text);
  if (port > 65535) throw new UsageError(`${what} must be a number from 0 to 65535, got '${text}'`);
  return port;
}

/** `HOST:PORT`, `[v6]:PORT`; with `defaultHost`, also a bare `PORT`. */
export function parseHostPort(text: string, defaultHost?: string): HostPort {
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(text);
  if (v6) return { host: v6[1]!, port: parsePort(v6[2]!) };
  const colon = text.lastIndexOf(":");
  if (colon < 0) {
    if (defaultHost !== undefined) return { host: defaultHost, port: parsePort(text) };
    throw new UsageError(`expected HOST:PORT, got '${text}'`);
  }
  const host = text.slice(0, colon);
  if (host.length === 0 || host.includes(":") || /\s/.test(host)) {
    throw new UsageError(`expected HOST:PORT (IPv6 as [addr]:PORT), got '${text}'`);
  }
  return { host, port: parsePort(text.slice(colon + 1)) };
}

/** `--listen [HOST:]PORT`; the host defaults to loopback, so a forward is never exposed by accident. */
export function parseListen(text: string): HostPort {
  return parseHostPort(text, "127.0.0.1");
}

/** `--allow NAME=HOST:PORT`. */
export function parseAllow(text: string): StreamMapping {
  const eq = text.indexOf("=");
  if (eq < 0) throw new UsageError(`--allow expects NAME=HOST:PORT, got '${text}'`);
  const name = text.slice(0, eq);
  if (!STREAM_NAME.test(name)) {
    throw new UsageError(`stream name '${name}' must be 1-64 letters, digits, '.', '_', ':' or '-'`);
  }
  const target = parseHostPort(text.slice(eq + 1));
  if (target.port === 0) throw new UsageError(`--allow ${name}: the target port must not be 0`);
  return { name, target };
}

/** Collects repeated `--allow` into a mapping; a name given twice is an error, not a silent override. */
export function collectAllows(texts: readonly string[], echo: boolean): Map<string, HostPort | "echo"> {
  const map = new Map<string, HostPort | "echo">();
  if (echo) map.set("echo", "echo");
  for (const text of texts) {
    const { name, target } = parseAllow(text);
    if (map.has(name)) throw new UsageError(`stream name '${name}' is mapped twice`);
    map.set(name, target);
  }
  return map;
}

export function parsePositiveInt(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new UsageError(`${what} must be a whole number from 1 to ${max}, got '${text}'`);
  }
  return Number(text);
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A byte count: `1000`, `64k`, `16M`, `1G` (binary units). */
export function parseBytes(text: string): number {
  const m = /^(\d+)([kKmMgG]?)(i?[bB])?$/.exec(text);
  const n = m ? Number(m[1]) * UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--bytes expects a positive size such as 1000, 64k, 16M or 1G, got '${text}'`);
  }
  return n;
}

export type MqttTransport = "mqtt" | "mqtt-ws";

export function parseTransport(text: string): MqttTransport {
  if (text === "mqtt" || text === "mqtt-ws") return text;
  throw new UsageError(`--transport must be mqtt or mqtt-ws, got '${text}'`);
}

/** `--ttl`: seconds, or with a unit (`30m`, `12h`, `7d`), from 1 s to `max` seconds. */
export function parseTtl(text: string, max: number): number {
  const m = /^(\d{1,15})([smhd]?)$/.exec(text);
  const mult: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };
  const n = m ? Number(m[1]) * mult[m[2]!]! : NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--ttl expects e.g. 3600, 30m, 12h or 7d, got '${text}'`);
  if (n > max) {
    throw new UsageError(
      `--ttl ${text} is longer than the ${max / 86400}d (${max} s) the control plane accepts by default ` +
        "(SERVICE_SAS_MAX_LIFETIME_SECONDS); a SAS can only be revoked by rotating its key",
    );
  }
  return n;
}

/** `KEY=value` lines; `#` comments and blank lines ignored; surrounding quotes stripped. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line
      .slice(0, eq)
      .trim()
      .replace(/^export\s+/, "");
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    out[key] = value;
  }
  return out;
}

/** `--tunnel-keepalive S`: PING after S idle seconds, give up after 3 S (docs/tunnel-protocol.md §6). */
export function parseTunnelKeepalive(text: string): {
  keepaliveIntervalInMs: number;
  keepaliveTimeoutInMs: number;
} {
  const seconds = parsePositiveInt(text, "--tunnel-keepalive", 3600);
  return { keepaliveIntervalInMs: seconds * 1000, keepaliveTimeoutInMs: seconds * 3000 };
}

/**
 * `--relay-endpoint URL`: the Web PubSub endpoint exactly as `devicestream endpoints` prints it
 * (`https://<name>.webpubsub.azure.com`, `http://127.0.0.1:8080` for the emulator): scheme and
 * host only. Returned as the URL's origin.
 */
export function parseRelayEndpoint(text: string): string {
  const expected = "give it as `devicestream endpoints` prints it, e.g. https://<name>.webpubsub.azure.com";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--relay-endpoint '${text}' is not a URL; ${expected}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new UsageError(
      `--relay-endpoint '${text}' must be https:// (http:// for a local emulator); ${expected}`,
    );
  if (url.username || url.password || url.search || url.hash || (url.pathname !== "/" && url.pathname !== ""))
    throw new UsageError(`--relay-endpoint '${text}' must be scheme and host only; ${expected}`);
  return url.origin;
}

/** Web PubSub hub names (its own rule; compared case-insensitively by the service). */
const HUB_NAME = /^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$/;

export function parseRelayHub(text: string): string {
  if (!HUB_NAME.test(text))
    throw new UsageError(
      `--relay-hub '${text}' is not a Web PubSub hub name (a letter, then letters, digits or _)`,
    );
  return text;
}

/** A yes/no setting from a configuration file: `1` or `0` (also true/false), nothing else. */
export function parseFlagSetting(name: string, text: string | undefined): boolean {
  if (text === undefined) return false;
  if (/^(1|true)$/i.test(text)) return true;
  if (/^(0|false)$/i.test(text)) return false;
  throw new UsageError(`${name} must be 1 or 0, got '${text}'`);
}
