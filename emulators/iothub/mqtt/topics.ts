import type { Identity } from "../identity";

/**
 * The per-identity topic namespace of IoT Hub's MQTT surface. Every device subscribes to the same
 * `$iothub/...` filters, so these are per-connection names, not a shared pub/sub space: the hub
 * delivers to one connection and devices never receive each other's messages.
 */
export const METHODS_FILTER = "$iothub/methods/POST/#";
const METHOD_RESPONSE = /^\$iothub\/methods\/res\/(-?\d{1,10})\/\?(.*)$/s;

function identityBase(identity: Identity): string {
  return identity.moduleId === undefined
    ? `devices/${identity.deviceId}`
    : `devices/${identity.deviceId}/modules/${identity.moduleId}`;
}

/** Filters an identity may subscribe to: its methods, twin and message topics, nothing wider. */
export function maySubscribe(identity: Identity, filter: string): boolean {
  const base = identityBase(identity);
  const allowed = [
    METHODS_FILTER,
    "$iothub/twin/res/#",
    "$iothub/twin/PATCH/properties/desired/#",
    identity.moduleId === undefined ? `${base}/messages/devicebound/#` : `${base}/inputs/#`,
  ];
  return allowed.includes(filter);
}

/** Topics an identity may publish to: method answers, twin requests and its own telemetry. */
export function mayPublish(identity: Identity, topic: string): boolean {
  const prefixes = [
    "$iothub/methods/res/",
    "$iothub/twin/GET/",
    "$iothub/twin/PATCH/properties/reported/",
    `${identityBase(identity)}/messages/events/`,
  ];
  return prefixes.some((prefix) => topic.startsWith(prefix));
}

export function methodRequestTopic(methodName: string, rid: string): string {
  return `$iothub/methods/POST/${methodName}/?$rid=${rid}`;
}

/** `$iothub/methods/res/{status}/?$rid={rid}`, or undefined when the topic is not a valid answer. */
export function parseMethodResponseTopic(topic: string): { status: number; rid: string } | undefined {
  const match = METHOD_RESPONSE.exec(topic);
  if (!match?.[1] || match[2] === undefined) return undefined;
  const status = Number(match[1]);
  const rid = new URLSearchParams(match[2]).get("$rid");
  if (!Number.isSafeInteger(status) || Math.abs(status) > 2 ** 31 || !rid) return undefined;
  return { status, rid };
}
