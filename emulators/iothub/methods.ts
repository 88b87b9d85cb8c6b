import { DIRECT_METHOD_LIMITS } from "../../shared/iothub/limits";
import type { DeviceGateway, MethodResponse } from "./mqtt/gateway";
import { type Identity, identityKey } from "./identity";
import type { EmulatorLog } from "./log";

export interface MethodCall {
  methodName: string;
  payload: unknown;
  responseTimeoutInSeconds: number;
  connectTimeoutInSeconds: number;
}

export type MethodOutcome =
  | { kind: "answered"; status: number; payload: unknown; rid: string }
  | { kind: "offline" }
  | { kind: "timeout"; rid: string }
  | { kind: "badAnswer"; rid: string; reason: string }
  | { kind: "cancelled" };

interface Pending {
  key: string;
  settle: (outcome: MethodOutcome) => void;
}

/**
 * Bridges a REST direct-method call to the device's MQTT connection and back: waits up to the
 * connect timeout for a method subscriber, publishes the request under a fresh `$rid`, and settles
 * on the matching answer, the response timeout, the caller going away, or shutdown.
 */
export class DirectMethodBridge {
  private nextRid = 1;
  private closed = false;
  private readonly pending = new Map<string, Pending>();
  private readonly stopListening: () => void;

  constructor(
    private readonly gateway: DeviceGateway,
    private readonly log: EmulatorLog,
  ) {
    this.stopListening = gateway.onMethodResponse((response) => this.onResponse(response));
  }

  async invoke(identity: Identity, call: MethodCall, signal?: AbortSignal): Promise<MethodOutcome> {
    if (this.closed) return { kind: "cancelled" };
    const key = identityKey(identity);
    const ready = await this.gateway.waitForMethodSubscriber(
      key,
      call.connectTimeoutInSeconds * 1000,
      signal,
    );
    if (signal?.aborted || this.closed) return { kind: "cancelled" };
    if (!ready) return { kind: "offline" };
    const rid = (this.nextRid++).toString(16);
    return new Promise<MethodOutcome>((resolve) => {
      const settle = (outcome: MethodOutcome) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.pending.delete(rid);
        resolve(outcome);
      };
      const onAbort = () => settle({ kind: "cancelled" });
      const timer = setTimeout(() => settle({ kind: "timeout", rid }), call.responseTimeoutInSeconds * 1000);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(rid, { key, settle });
      // JSON text, "null" for no payload: the Node device SDK answers an empty body with 400 by itself.
      const payload = Buffer.from(JSON.stringify(call.payload ?? null), "utf8");
      if (!this.gateway.sendMethodRequest(key, call.methodName, rid, payload)) settle({ kind: "offline" });
    });
  }

  close(): void {
    this.closed = true;
    this.stopListening();
    for (const pending of [...this.pending.values()]) pending.settle({ kind: "cancelled" });
  }

  private onResponse(response: MethodResponse): void {
    const pending = this.pending.get(response.rid);
    if (!pending || pending.key !== response.key) {
      this.log(`method answer from ${response.key} for unknown or expired rid ${response.rid} ignored`);
      return;
    }
    if (response.body.length > DIRECT_METHOD_LIMITS.maxPayloadBytes) {
      pending.settle({
        kind: "badAnswer",
        rid: response.rid,
        reason: "the device's answer is larger than 128 KB",
      });
      return;
    }
    if (response.body.length === 0) {
      pending.settle({ kind: "answered", status: response.status, payload: null, rid: response.rid });
      return;
    }
    try {
      const payload = JSON.parse(response.body.toString("utf8")) as unknown;
      pending.settle({ kind: "answered", status: response.status, payload, rid: response.rid });
    } catch {
      pending.settle({ kind: "badAnswer", rid: response.rid, reason: "the device's answer is not JSON" });
    }
  }
}
