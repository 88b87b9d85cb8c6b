/**
 * What the HTTP handlers need from shared/auth, in one small adapter: who is calling (with the
 * audit id recorded as `openedBy`), may they do this, may they see that.
 */
import type { HttpRequest } from "@azure/functions";
import {
  type Action,
  type AuthChain,
  type AuthorizationTarget,
  type Principal,
  authorize,
  callerKey,
  isAllowed,
  openedBy,
  streamLimit,
} from "../auth";

export type { Action };

export interface Caller {
  /** Audit identity: the SAS policy name, or the Entra object/app id. */
  id: string;
  principal: Principal;
  /** Its share of each device's concurrency slots: what it is counted under, and its limit. */
  share: { key: string; maxStreams: number };
}

export interface AccessControl {
  /** Throws a 401 ApiError when the request proves no identity. */
  authenticate(request: HttpRequest): Promise<Caller>;
  /** Throws a 403 ApiError when the caller may not do `action` on `target`. */
  authorize(caller: Caller, action: Action, target: AuthorizationTarget): void;
  /** Whether the caller may do `action` on this stream (list filtering, and 404 instead of 403). */
  allows(caller: Caller, action: Action, target: AuthorizationTarget & { streamName: string }): boolean;
}

/** `maxPerCaller`: STREAMS_MAX_PER_CALLER, for grants that set no maxStreamsPerDevice. */
export function accessControl(
  chain: Pick<AuthChain<Principal>, "authenticate">,
  maxPerCaller: number,
): AccessControl {
  return {
    async authenticate(request) {
      const principal = await chain.authenticate(request.headers);
      return {
        id: openedBy(principal),
        principal,
        share: { key: callerKey(principal), maxStreams: streamLimit(principal, maxPerCaller) },
      };
    },
    authorize: (caller, action, target) => authorize(caller.principal, action, target),
    allows: (caller, action, target) => isAllowed(caller.principal, action, target),
  };
}
