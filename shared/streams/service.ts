/**
 * Stream lifecycle orchestration behind one service: create (slot → record → credentials → direct
 * method), read and close here; the relay's events in ./relayEvents and the housekeeping sweep in
 * ./sweep. Decisions come from ./transitions; every write goes through the read-decide-write loop
 * of ./records, and a failed handshake becomes an API error through ./failures.
 */
import { createHash } from "node:crypto";
import { OFFER_VERSION, versionRefusal } from "../../common/offer";
import { Errors } from "../errors";
import type { DirectMethodInvoker } from "../iothub";
import type { Logger } from "../log";
import type { Relay } from "../relay/relay";
import {
  InvalidContinuationTokenError,
  type Page,
  SlotsExhaustedError,
  StreamExistsError,
  type StreamStore,
  type Versioned,
} from "../store/streamStore";
import {
  type CloseCode,
  type StreamRecord,
  type StreamState,
  argumentSafeId,
  isActive,
  newStreamId,
  relayGroup,
  relayUserId,
} from "./model";
import { readDeviceAnswer } from "./answer";
import { classifySignalError, errorForEnded, versionMismatch } from "./failures";
import { StreamRecords } from "./records";
import { type ConnectOutcome, StreamRelayEvents } from "./relayEvents";
import { StreamSweeper } from "./sweep";
import {
  type HandshakeFailure,
  decideAccepted,
  type ReportResult,
  decideClose,
  decideHandshakeFailed,
} from "./transitions";

export interface StreamLimits {
  maxPerDevice: number;
  maxLifetimeSeconds: number;
  retentionHours: number;
  relayTokenMinutes: number;
}

export interface StreamServiceDeps {
  store: StreamStore;
  relay: Relay;
  signaller: DirectMethodInvoker;
  logger: Logger;
  limits: StreamLimits;
  methodName: string;
  now?: () => number;
}

export interface CreateStreamInput {
  deviceId: string;
  moduleId?: string;
  name: string;
  /** JSON text, already bounded by the caller. */
  data?: string;
  handshakeTimeoutSeconds: number;
  openedBy: string;
  /** The caller's share of the device's slots: a stable key for the caller, and its limit. */
  caller: { key: string; maxStreams: number };
  repeatabilityId?: string;
}

export interface CreatedStream {
  record: StreamRecord;
  relay: { url: string; token: string };
  expiresAt: number;
  deviceResponse?: unknown;
}

const TOO_MANY_STREAMS_RETRY_SECONDS = 5;

export class StreamService {
  private readonly now: () => number;
  private readonly records: StreamRecords;
  private readonly relayEvents: StreamRelayEvents;
  private readonly sweeper: StreamSweeper;

  constructor(private readonly deps: StreamServiceDeps) {
    this.now = deps.now ?? Date.now;
    const { store, relay, logger } = deps;
    this.records = new StreamRecords({
      store,
      relay,
      logger,
      retentionHours: deps.limits.retentionHours,
      now: this.now,
    });
    this.relayEvents = new StreamRelayEvents({ store, logger }, this.records);
    this.sweeper = new StreamSweeper({ store, relay, logger, now: this.now }, this.records);
  }

  // ---- create ---------------------------------------------------------------------------------

  async create(input: CreateStreamInput): Promise<CreatedStream> {
    const { store, limits } = this.deps;
    const now = this.now();
    const streamId = input.repeatabilityId ? repeatableStreamId(input) : newStreamId();
    const record: StreamRecord = {
      streamId,
      deviceId: input.deviceId,
      ...(input.moduleId !== undefined ? { moduleId: input.moduleId } : {}),
      name: input.name,
      state: "Requested",
      openedBy: input.openedBy,
      ...(input.data !== undefined ? { requestData: input.data } : {}),
      createdAt: now,
      handshakeDeadline: now + input.handshakeTimeoutSeconds * 1000,
      ...(limits.maxLifetimeSeconds > 0 ? { expiresAt: now + limits.maxLifetimeSeconds * 1000 } : {}),
      slot: -1,
      ...(input.repeatabilityId !== undefined ? { repeatabilityId: input.repeatabilityId } : {}),
    };

    let created: Versioned<StreamRecord>;
    try {
      created = await store.create(record, {
        maxPerDevice: limits.maxPerDevice,
        caller: { key: input.caller.key, max: input.caller.maxStreams },
      });
    } catch (err) {
      if (err instanceof SlotsExhaustedError) {
        throw Errors.tooManyStreams(
          err.scope === "caller"
            ? `Caller '${input.openedBy}' already holds ${input.caller.maxStreams} active streams on device '${input.deviceId}', its limit there; close one or retry later.`
            : `Device '${input.deviceId}' already has ${limits.maxPerDevice} active streams; close one or retry later.`,
          TOO_MANY_STREAMS_RETRY_SECONDS,
        );
      }
      if (err instanceof StreamExistsError) return this.repeat(input, streamId);
      throw err;
    }
    this.records.created(created, input.openedBy);

    const group = relayGroup(streamId);
    const minutes = limits.relayTokenMinutes;
    const [deviceRelay, serviceRelay] = await Promise.all([
      this.deps.relay.mintCredential(relayUserId(streamId, "device"), group, minutes),
      this.deps.relay.mintCredential(relayUserId(streamId, "service"), group, minutes),
    ]).catch(async (err: unknown) => {
      await this.failHandshake(
        created.value,
        "Failed",
        "UpstreamError",
        "the relay could not mint credentials",
      );
      throw err;
    });

    // An agent ignores fields it does not know; anything else is a new OFFER_VERSION (common/offer.ts).
    const payload = {
      v: OFFER_VERSION,
      streamId,
      name: input.name,
      data: input.data !== undefined ? (JSON.parse(input.data) as unknown) : null,
      relay: deviceRelay,
      expiresAt: new Date(record.handshakeDeadline).toISOString(),
    };
    const remainingSeconds = Math.max(5, Math.ceil((record.handshakeDeadline - this.now()) / 1000));

    let status: number;
    let answer: unknown;
    try {
      const result = await this.deps.signaller.invoke(
        { deviceId: input.deviceId, ...(input.moduleId !== undefined ? { moduleId: input.moduleId } : {}) },
        {
          methodName: this.deps.methodName,
          payload,
          responseTimeoutInSeconds: remainingSeconds,
          connectTimeoutInSeconds: 0,
        },
      );
      status = result.status;
      answer = result.payload;
    } catch (err) {
      const failure = classifySignalError(err);
      const closed = await this.failHandshake(created.value, failure.state, failure.code, failure.message);
      throw errorForEnded(closed);
    }

    return this.settle(created.value, serviceRelay, status, answer);
  }

  /** The device answered the direct method: the stream is accepted, rejected, or failed. */
  private async settle(
    record: StreamRecord,
    serviceRelay: { url: string; token: string },
    status: number,
    payload: unknown,
  ): Promise<CreatedStream> {
    const answer = readDeviceAnswer(status, payload);
    if (answer.kind === "unusable") {
      const reason = `the device's answer is unusable: ${answer.problem}`;
      const closed = await this.failHandshake(record, "Failed", "InvalidDeviceResponse", reason);
      throw errorForEnded(closed);
    }
    if (answer.kind === "rejected") {
      const refusedVersion = versionRefusal(status, payload);
      const closed = await this.failHandshake(
        record,
        "Rejected",
        refusedVersion ? "UnsupportedOfferVersion" : "StreamRejected",
        refusedVersion ? versionMismatch(refusedVersion.versions) : answer.reason,
        answer.dataJson,
      );
      throw errorForEnded(closed);
    }
    const outcome = await this.records.mutate(
      record.deviceId,
      record.streamId,
      (r, t) => decideAccepted(r, t, answer.dataJson),
      { side: "device" },
    );
    if (!outcome || !outcome.result.ok) throw errorForEnded(outcome?.record ?? record);
    return {
      record: outcome.record,
      relay: serviceRelay,
      expiresAt: record.handshakeDeadline,
      ...(answer.data !== undefined ? { deviceResponse: answer.data } : {}),
    };
  }

  /** A create repeated with the same Repeatability-Request-ID. */
  private async repeat(input: CreateStreamInput, streamId: string): Promise<CreatedStream> {
    const existing = await this.deps.store.get(input.deviceId, streamId);
    if (!existing) {
      throw Errors.conflict(
        "RequestInProgress",
        "A request with this Repeatability-Request-ID is in progress; retry.",
      );
    }
    const r = existing.value;
    if (r.name !== input.name || r.moduleId !== input.moduleId) {
      throw Errors.conflict(
        "RepeatabilityConflict",
        "This Repeatability-Request-ID was used for a different request; use a new ID.",
      );
    }
    if (r.state === "Requested") {
      throw Errors.conflict(
        "RequestInProgress",
        "The original request is still waiting for the device; retry.",
      );
    }
    if (r.state === "Accepted" && r.serviceConnectionId === undefined) {
      // Relay credentials are single-use by the connect handler, so a fresh one for the same side is safe.
      const relay = await this.deps.relay.mintCredential(
        relayUserId(streamId, "service"),
        relayGroup(streamId),
        this.deps.limits.relayTokenMinutes,
      );
      return {
        record: r,
        relay,
        expiresAt: r.handshakeDeadline,
        ...(r.responseData !== undefined ? { deviceResponse: JSON.parse(r.responseData) as unknown } : {}),
      };
    }
    if (isActive(r.state)) {
      throw Errors.conflict(
        "RelayCredentialUsed",
        "The original request's stream is already connected on the relay.",
      );
    }
    throw errorForEnded(r);
  }

  private async failHandshake(
    record: StreamRecord,
    state: HandshakeFailure,
    code: CloseCode,
    reason: string,
    responseData?: string,
  ): Promise<StreamRecord> {
    const outcome = await this.records.mutate(
      record.deviceId,
      record.streamId,
      (r, t) => decideHandshakeFailed(r, state, code, reason, t, responseData),
      { side: "device" },
    );
    return outcome?.record ?? { ...record, state, closeCode: code, closeReason: reason };
  }

  // ---- read and close -------------------------------------------------------------------------

  async get(deviceId: string, streamId: string): Promise<StreamRecord | undefined> {
    return (await this.deps.store.get(deviceId, streamId))?.value;
  }

  async list(
    deviceId: string,
    options: { state?: StreamState; pageSize: number; continuationToken?: string },
  ): Promise<Page<StreamRecord>> {
    try {
      return await this.deps.store.list(deviceId, options);
    } catch (err) {
      if (err instanceof InvalidContinuationTokenError) {
        throw Errors.invalidField("query.continuationToken", `${err.message}; list again without it`);
      }
      throw err;
    }
  }

  /** Closes a stream by API; false when it was not active. */
  async close(deviceId: string, streamId: string, caller: string): Promise<boolean> {
    const outcome = await this.records.mutate(
      deviceId,
      streamId,
      (r, t) => decideClose(r, "api", "ClosedByApi", `closed by ${caller}`, t),
      { caller },
    );
    return outcome?.result.closed ?? false;
  }

  // ---- relay events ---------------------------------------------------------------------------

  onConnect(userId: string | undefined, connectionId: string): Promise<ConnectOutcome> {
    return this.relayEvents.onConnect(userId, connectionId);
  }

  onDisconnected(
    userId: string | undefined,
    connectionId: string,
    reason: string | undefined,
  ): Promise<void> {
    return this.relayEvents.onDisconnected(userId, connectionId, reason);
  }

  /** `report` user event: a side's byte count, once per connection. */
  onReport(userId: string | undefined, connectionId: string, bytesSent: number): Promise<ReportResult> {
    return this.relayEvents.onReport(userId, connectionId, bytesSent);
  }

  // ---- housekeeping ---------------------------------------------------------------------------

  /** One pass of the timer: handshake deadlines, lifetimes, lost events, retention. */
  sweep(): Promise<{ examined: number }> {
    return this.sweeper.sweep();
  }
}

/** The same caller repeating the same request id reaches the same stream. */
function repeatableStreamId(input: CreateStreamInput): string {
  return argumentSafeId(
    createHash("sha256")
      .update(JSON.stringify([input.openedBy, input.deviceId, input.moduleId ?? null, input.repeatabilityId]))
      .digest("base64url")
      .slice(0, 22),
  );
}
