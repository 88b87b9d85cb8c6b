/**
 * Whether a URL's host is this machine. `URL.hostname` keeps IPv6 brackets and lowercases names;
 * IPv4 in other spellings (`0x7f.1`, `2130706433`) is already normalised to dotted form by `new URL`.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost" || host === "[::1]" || host === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A `host[:port]` (as in a connection string's HostName), parsed the way a URL would parse it. */
export function isLoopbackHostPort(hostPort: string): boolean {
  try {
    return isLoopbackHost(new URL(`http://${hostPort}`).hostname);
  } catch {
    return false;
  }
}
