/**
 * What the HTTP handlers need from authentication and authorization; shared/auth provides it.
 * Keeping the port this small lets handlers be tested with the real auth chain or without it.
 */
import type { HttpRequest } from "@azure/functions";

export type Action = "open" | "list" | "show" | "close";

export interface Caller {
  /** Audit identity: the SAS policy name, or the Entra object/app id. */
  id: string;
}

export interface AccessTarget {
  deviceId: string;
  moduleId?: string;
  streamName?: string;
}

export interface AccessControl {
  /** Throws a 401 ApiError when the request proves no identity. */
  authenticate(request: HttpRequest): Promise<Caller>;
  /** Throws a 403 ApiError when the caller may not do `action` on `target`. */
  authorize(caller: Caller, action: Action, target: AccessTarget): void;
  /** Whether the caller may see streams of this name on this device (list filtering). */
  canSee(caller: Caller, target: AccessTarget & { streamName: string }): boolean;
}

/** What the relay event handler needs: origin check and request authentication. */
export interface RelayEventGuard {
  /** Abuse protection: is this WebHook-Request-Origin allowed? */
  allowsOrigin(origin: string): boolean;
  /** Throws a 401 ApiError unless the request comes from our Web PubSub. */
  verify(request: HttpRequest, connectionId: string): Promise<void>;
}
