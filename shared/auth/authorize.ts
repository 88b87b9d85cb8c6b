import { Errors } from "../errors";
import { compileDevicePattern, compileGlob } from "./glob";
import { ACTIONS, describePrincipal, type Action, type Grant, type Principal } from "./principal";

/** A grant as configured (see config.ts); `actions` defaults to all four. */
export interface GrantSpec {
  readonly devices: readonly string[];
  readonly streams: readonly string[];
  readonly actions?: readonly Action[];
  readonly maxStreamsPerDevice?: number;
}

export interface DeviceTarget {
  readonly deviceId: string;
  readonly moduleId?: string | undefined;
}

export interface AuthorizationTarget extends DeviceTarget {
  /**
   * The stream's name. Leave it out for requests about a device's streams as a whole (list, close
   * all): they are allowed when any grant covers the device, and the caller then narrows the
   * streams with `streamNameFilter`.
   */
  readonly streamName?: string | undefined;
}

/** Compiles a grant once; throws GlobSyntaxError on a bad pattern (config validation reports it first). */
export function compileGrant(source: string, spec: GrantSpec): Grant {
  return {
    source,
    devices: spec.devices.map(compileDevicePattern),
    streams: spec.streams.map(compileGlob),
    actions: new Set(spec.actions ?? ACTIONS),
    ...(spec.maxStreamsPerDevice !== undefined ? { maxStreamsPerDevice: spec.maxStreamsPerDevice } : {}),
  };
}

function grantCoversDevice(grant: Grant, action: Action, device: DeviceTarget): boolean {
  return grant.actions.has(action) && grant.devices.some((d) => d.matches(device));
}

function grantAllows(grant: Grant, action: Action, target: AuthorizationTarget): boolean {
  if (!grantCoversDevice(grant, action, target)) return false;
  const name = target.streamName;
  return name === undefined || grant.streams.some((s) => s.matches(name));
}

export function isAllowed(principal: Principal, action: Action, target: AuthorizationTarget): boolean {
  return principal.grants.some((g) => grantAllows(g, action, target));
}

function describeTarget(target: AuthorizationTarget): string {
  const where =
    target.moduleId === undefined
      ? `device '${target.deviceId}'`
      : `module '${target.moduleId}' of device '${target.deviceId}'`;
  return target.streamName === undefined
    ? `streams on ${where}`
    : `stream '${target.streamName}' on ${where}`;
}

/** Throws `Errors.forbidden` (403) unless one of the principal's grants allows the action. */
export function authorize(principal: Principal, action: Action, target: AuthorizationTarget): void {
  if (isAllowed(principal, action, target)) return;
  throw Errors.forbidden(`${describePrincipal(principal)} may not ${action} ${describeTarget(target)}.`);
}

/**
 * The stream names this principal may act on for one device: use it to narrow a list (action
 * "list") or a close-all (action "close") after `authorize` let the request through.
 */
export function streamNameFilter(
  principal: Principal,
  action: Action,
  device: DeviceTarget,
): (streamName: string) => boolean {
  const grants = principal.grants.filter((g) => grantCoversDevice(g, action, device));
  return (streamName) => grants.some((g) => g.streams.some((s) => s.matches(streamName)));
}
