import type { DevicePattern, Glob } from "./glob";

export const ACTIONS = ["open", "list", "show", "close"] as const;
export type Action = (typeof ACTIONS)[number];

/** What one SAS policy or Entra app role may do, compiled once from configuration. */
export interface Grant {
  /** Where the grant comes from, for error messages: `SAS policy 'x'` or `app role 'y'`. */
  readonly source: string;
  readonly devices: readonly DevicePattern[];
  readonly streams: readonly Glob[];
  readonly actions: ReadonlySet<Action>;
  /** Concurrent streams a caller with this grant may hold on one device; absent: the default. */
  readonly maxStreamsPerDevice?: number;
}

export interface SasPrincipal {
  readonly kind: "sas";
  readonly policyName: string;
  readonly grants: readonly Grant[];
}

export interface EntraPrincipal {
  readonly kind: "entra";
  /** `oid`: the user or service principal. Absent only in tokens that carry an app id instead. */
  readonly objectId?: string;
  /** `azp` (v2) or `appid` (v1): the client application. */
  readonly appId?: string;
  /** Every string in the token's `roles` claim, configured or not (for audit). */
  readonly roles: readonly string[];
  /** Grants of the roles this service is configured with; never empty for an authenticated principal. */
  readonly grants: readonly Grant[];
}

/** An authenticated caller of the control plane, carrying what it is allowed to do. */
export type Principal = SasPrincipal | EntraPrincipal;

/**
 * The `openedBy` audit value: the SAS policy name, or the Entra object id (the app id when the
 * token has no `oid`). Authentication guarantees that one of the two is present.
 */
export function openedBy(principal: Principal): string {
  if (principal.kind === "sas") return principal.policyName;
  return principal.objectId ?? principal.appId ?? "unknown";
}

/**
 * The key a caller's share of a device's concurrency slots is counted under: the audit id with
 * its kind, so a SAS policy named like an Entra object id never shares a limit with it.
 */
export function callerKey(principal: Principal): string {
  return `${principal.kind}:${openedBy(principal)}`;
}

/**
 * Concurrent streams the principal may hold on one device: the largest limit among its grants,
 * each grant without one counting as `fallback`. Grants add up access, so they add up room too.
 */
export function streamLimit(principal: Principal, fallback: number): number {
  return Math.max(...principal.grants.map((g) => g.maxStreamsPerDevice ?? fallback), 1);
}

/** A short human-readable name for messages and logs; never contains token material. */
export function describePrincipal(principal: Principal): string {
  if (principal.kind === "sas") return `SAS policy '${principal.policyName}'`;
  if (principal.objectId !== undefined) return `Entra principal '${principal.objectId}'`;
  return `Entra application '${principal.appId ?? "unknown"}'`;
}
