/**
 * What would keep this process alive: referenced handles (sockets, servers, child processes, ...),
 * pending requests (DNS lookups, file system calls) and referenced timers. Node documents only the
 * resource type names (`process.getActiveResourcesInfo()`); the objects come from the undocumented
 * `process._getActiveHandles()`, so that a socket can be named by its addresses and the process's
 * own stdio left out.
 */
import { Server, Socket } from "node:net";

interface ProcessInternals {
  _getActiveHandles?: () => unknown[];
  _getActiveRequests?: () => unknown[];
}

/** Ref'd handles except `exclude` (stdio), plus timers and requests, one description each. */
export function openHandles(exclude: readonly unknown[] = []): string[] {
  const skip = new Set(exclude);
  const internals = process as ProcessInternals;
  const handles = (internals._getActiveHandles?.() ?? []).filter(
    // A destroyed socket is only waiting for libuv's close callback: it holds nothing.
    (h) => !skip.has(h) && !(h instanceof Socket && h.destroyed),
  );
  const requests = internals._getActiveRequests?.() ?? [];
  const timers = process.getActiveResourcesInfo().filter((r) => r === "Timeout" || r === "Immediate");
  return [...handles.map(describeHandle), ...requests.map(describeHandle), ...timers];
}

function describeHandle(handle: unknown): string {
  if (handle instanceof Socket) {
    const local = handle.localAddress ? `${handle.localAddress}:${handle.localPort}` : "?";
    const remote = handle.remoteAddress ? `${handle.remoteAddress}:${handle.remotePort}` : "?";
    return `${handle.constructor.name} ${local} -> ${remote}`;
  }
  if (handle instanceof Server) {
    const address = handle.address();
    return `Server ${typeof address === "string" ? address : `${address?.address}:${address?.port}`}`;
  }
  const name = (handle as { constructor?: { name?: string } } | null)?.constructor?.name;
  return name ?? typeof handle;
}
