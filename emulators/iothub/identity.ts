/** A device, or a module on a device: the unit that authenticates and receives direct methods. */
export interface Identity {
  deviceId: string;
  moduleId?: string;
}

/** `deviceId` or `deviceId/moduleId`: also the MQTT client ID IoT Hub expects. */
export function identityKey(identity: Identity): string {
  return identity.moduleId === undefined ? identity.deviceId : `${identity.deviceId}/${identity.moduleId}`;
}

export function describeIdentity(identity: Identity): string {
  return identity.moduleId === undefined
    ? `device '${identity.deviceId}'`
    : `module '${identity.deviceId}/${identity.moduleId}'`;
}

/** The resource a device or module SAS token is scoped to, without the host. */
export function identityResourcePath(identity: Identity): string {
  const device = `devices/${identity.deviceId}`;
  return identity.moduleId === undefined ? device : `${device}/modules/${identity.moduleId}`;
}

// IoT Hub's documented ID alphabet. It has no '/', so "deviceId/moduleId" splits back unambiguously.
const ID_PATTERN = /^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$/;

export function checkId(kind: "deviceId" | "moduleId", id: unknown): string | undefined {
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    return `${kind} must be 1-128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '`;
  }
  return undefined;
}

/** Parses an MQTT client ID back into an identity; undefined when it is not one. */
export function parseIdentityKey(clientId: string): Identity | undefined {
  const parts = clientId.split("/");
  const [deviceId, moduleId] = parts;
  if (parts.length > 2 || deviceId === undefined || checkId("deviceId", deviceId)) return undefined;
  if (moduleId === undefined) return { deviceId };
  return checkId("moduleId", moduleId) ? undefined : { deviceId, moduleId };
}
