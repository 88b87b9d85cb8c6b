/**
 * Test doubles for the relay and the device signaller, used where a test is about the control
 * plane's own logic. The emulator-backed tests exercise the real protocols.
 */
import type { DirectMethodInvoker, DirectMethodRequest, DirectMethodTarget } from "../../shared/iothub";
import type { Relay, RelayConnection } from "../../shared/relay/relay";
import { relayGroup, relayUserId } from "../../shared/streams/model";
import type { StreamService } from "../../shared/streams/service";

export class MemoryRelay implements Relay {
  readonly hub = "streams";
  readonly clientEndpoint = "ws://relay.test/client/hubs/streams";
  readonly members = new Map<string, RelayConnection[]>();
  readonly closed: { group: string; reason: string }[] = [];
  async mintCredential(userId: string, group: string) {
    return { url: this.clientEndpoint, token: `token-for:${userId}:${group}` };
  }
  async groupConnections(group: string) {
    return this.members.get(group) ?? [];
  }
  async closeGroup(group: string, reason: string) {
    this.closed.push({ group, reason });
    this.members.delete(group);
  }
}

export type Answer = (
  target: DirectMethodTarget,
  request: DirectMethodRequest,
) => Promise<{ status: number; payload: unknown }>;

export class ScriptedSignaller implements DirectMethodInvoker {
  calls: { target: DirectMethodTarget; request: DirectMethodRequest }[] = [];
  constructor(public answer: Answer = async () => ({ status: 200, payload: { accepted: true } })) {}
  invoke(target: DirectMethodTarget, request: DirectMethodRequest) {
    this.calls.push({ target, request });
    return this.answer(target, request);
  }
}

/** A device that joins the relay before it answers, as the protocol requires. */
export function joiningDevice(service: () => StreamService, relay: MemoryRelay, data?: unknown): Answer {
  return async (_target, request) => {
    const payload = request.payload as { streamId: string };
    const connectionId = `dev-${payload.streamId}`;
    const outcome = await service().onConnect(relayUserId(payload.streamId, "device"), connectionId);
    if (!outcome.accept) return { status: 500, payload: { reason: outcome.reason } };
    relay.members.set(relayGroup(payload.streamId), [
      { connectionId, userId: relayUserId(payload.streamId, "device") },
    ]);
    return { status: 200, payload: { accepted: true, ...(data !== undefined ? { data } : {}) } };
  };
}
