/**
 * Stream lifecycle orchestration: create (slot → record → credentials → direct method), relay
 * events, close, and the housekeeping sweep. Decisions come from ./transitions; this file reads,
 * decides, writes with the ETag it read, and on a conflict reads again and decides again.
 */
import { createHash } from "node:crypto";
import { OFFER_VERSION, versionRefusal } from "../../common/offer";
import { ApiError, Errors } from "../errors";
import { DirectMethodError, type DirectMethodInvoker } from "../iothub";
import type { Logger } from "../log";
import type { Relay } from "../relay/relay";
import {
  EtagConflictError,
  type IndexEntry,
  InvalidContinuationTokenError,
  type Page,
  SlotsExhaustedError,
  StreamExistsError,
  type StreamStore,
  type Versioned,
} from "../store/streamStore";
import {
  type CloseCode,
  type Closer,
  type Side,
  type StreamRecord,
  type StreamState,
  argumentSafeId,
  connectionIdOf,
  isActive,
  newStreamId,
  parseRelayUserId,
  relayGroup,
  relayUserId,
} from "./model";
import { readDeviceAnswer } from "./answer";
import { RecentRecords } from "./recent";
import {
  type Decision,
  type HandshakeFailure,
  type Presence,
  decideAccepted,
  type ReportResult,
  bytesReported,
  decideBytesReported,
  decideClose,
  decideConnect,
  decideDisconnected,
  decideHandshakeFailed,
  decideSweep,
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

/** How often an established stream's connections are checked against the relay. */
const PRESENCE_CHECK_MS = 5 * 60_000;
/** Conflicts on one record are rare; this many in a row means something is wrong. */
const MAX_CONFLICT_RETRIES = 20;
const TOO_MANY_STREAMS_RETRY_SECONDS = 5;
const THROTTLED_RETRY_SECONDS = 10;
/** Instances' clocks may disagree by this much about when retention ends. */
const CLOCK_SKEW_MS = 60_000;
/** A few KiB each; enough for every stream of a busy instance's last minutes. */
const RECENT_RECORDS = 4096;

export type ConnectOutcome =
  { accept: true; userId: string; group: string } | { accept: false; reason: string };

export class StreamService {
  private readonly now: () => number;
  private readonly recent: RecentRecords;

  constructor(private readonly deps: StreamServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.recent = new RecentRecords(RECENT_RECORDS);
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
    this.recent.set(created);
    this.logTransition(created.value, undefined, { caller: input.openedBy });

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
    const outcome = await this.mutate(
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
    const outcome = await this.mutate(
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
    const outcome = await this.mutate(
      deviceId,
      streamId,
      (r, t) => decideClose(r, "api", "ClosedByApi", `closed by ${caller}`, t),
      { caller },
    );
    return outcome?.result.closed ?? false;
  }

  // ---- relay events ---------------------------------------------------------------------------

  async onConnect(userId: string | undefined, connectionId: string): Promise<ConnectOutcome> {
    const outcome = await this.mutateForRelayUser(userId, (r, side, t) =>
      decideConnect(r, side, connectionId, t),
    );
    if (!outcome) return { accept: false, reason: "unknown or expired stream" };
    const { streamId, side, record, result } = outcome;
    if (!result.accept) {
      this.deps.logger.log("warn", "relay.connect.refused", {
        streamId,
        deviceId: record.deviceId,
        side,
        connectionId,
        reason: result.reason,
      });
      return result;
    }
    return { accept: true, userId: relayUserId(streamId, side), group: relayGroup(streamId) };
  }

  async onDisconnected(
    userId: string | undefined,
    connectionId: string,
    reason: string | undefined,
  ): Promise<void> {
    const outcome = await this.mutateForRelayUser(userId, (r, side, t) =>
      decideDisconnected(r, side, connectionId, reason, t),
    );
    // Duplicated and late events are expected; a debug line shows they were seen and ignored.
    this.deps.logger.log("debug", "relay.disconnected", {
      userId,
      connectionId,
      ...(outcome ? { streamId: outcome.streamId, side: outcome.side, closed: outcome.result.closed } : {}),
    });
  }

  /** `report` user event: a side's byte count, once per connection. */
  async onReport(userId: string | undefined, connectionId: string, bytesSent: number): Promise<ReportResult> {
    // A repeat needs no store call: a recorded report and its connection id never change, so a
    // remembered record that shows this connection's report is the truth whatever others did.
    const parsed = parseRelayUserId(userId);
    const cached = parsed && this.recent.get(parsed.streamId)?.value;
    if (parsed && cached && connectionIdOf(cached, parsed.side) === connectionId) {
      if (bytesReported(cached, parsed.side))
        return { accepted: false, reason: "this connection already reported" };
    }
    const outcome = await this.mutateForRelayUser(userId, (r, side) =>
      decideBytesReported(r, side, connectionId, bytesSent),
    );
    return outcome?.result ?? { accepted: false, reason: "unknown or expired stream" };
  }

  /** Relay events name a stream only through the user id we minted; the index leads to its record. */
  private async mutateForRelayUser<R>(
    userId: string | undefined,
    decide: (record: StreamRecord, side: Side, now: number) => Decision<R>,
  ): Promise<{ result: R; record: StreamRecord; streamId: string; side: Side } | undefined> {
    const parsed = parseRelayUserId(userId);
    if (!parsed) return undefined;
    const { streamId, side } = parsed;
    const deviceId =
      this.recent.get(streamId)?.value.deviceId ?? (await this.deps.store.findIndex(streamId))?.deviceId;
    if (deviceId === undefined) return undefined;
    const outcome = await this.mutate(deviceId, streamId, (r, t) => decide(r, side, t), { side });
    return outcome && { ...outcome, streamId, side };
  }

  // ---- housekeeping ---------------------------------------------------------------------------

  /** One pass of the timer: handshake deadlines, lifetimes, lost events, retention. */
  async sweep(): Promise<{ examined: number }> {
    let examined = 0;
    for await (const entry of this.deps.store.due(this.now())) {
      examined++;
      try {
        await this.sweepOne(entry);
      } catch (err) {
        this.deps.logger.log("error", "sweep.failed", {
          streamId: entry.streamId,
          deviceId: entry.deviceId,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    return { examined };
  }

  private async sweepOne(entry: IndexEntry): Promise<void> {
    const { store } = this.deps;
    const current = await store.get(entry.deviceId, entry.streamId);
    if (!current) {
      await store.deleteIndex(entry.streamId);
      return;
    }
    const record = current.value;
    if (!isActive(record.state)) {
      const closedAt = record.closedAt ?? record.createdAt;
      if (entry.phase !== "closed") {
        await this.finalize(record);
      } else if (this.now() >= closedAt + this.retentionMs()) {
        await store.purge(record.deviceId, record.streamId);
      }
      return;
    }
    const presence = await this.presence(record);
    const outcome = await this.mutate(
      record.deviceId,
      record.streamId,
      (r, t) => decideSweep(r, t, presence),
      {},
    );
    if (outcome && isActive(outcome.record.state)) await this.schedule(outcome.record);
  }

  private async presence(record: StreamRecord): Promise<Presence | undefined> {
    const now = this.now();
    const mustAsk =
      record.state === "Established" ||
      now > record.handshakeDeadline ||
      (record.expiresAt ?? Infinity) <= now;
    if (!mustAsk) return undefined;
    const connections = await this.deps.relay.groupConnections(relayGroup(record.streamId));
    const ids = new Set(connections.map((c) => c.connectionId));
    return {
      device: record.deviceConnectionId !== undefined && ids.has(record.deviceConnectionId),
      service: record.serviceConnectionId !== undefined && ids.has(record.serviceConnectionId),
    };
  }

  /**
   * Whether a remembered record is still the stored one whatever other instances did: terminal
   * records never change state again, and until retention ends none can have been purged and
   * created anew under the same id (a reused Repeatability-Request-ID).
   */
  private finalInMemory(record: StreamRecord): boolean {
    if (isActive(record.state)) return false;
    const closedAt = record.closedAt ?? record.createdAt;
    return this.now() < closedAt + this.retentionMs() - CLOCK_SKEW_MS;
  }

  private retentionMs(): number {
    return this.deps.limits.retentionHours * 3600_000;
  }

  /** When the timer must next look at an active stream. */
  private async schedule(record: StreamRecord): Promise<void> {
    const now = this.now();
    const established = record.state === "Established";
    let dueAt = established ? now + PRESENCE_CHECK_MS : Math.max(record.handshakeDeadline, now + 1000);
    if (record.expiresAt !== undefined) dueAt = Math.min(dueAt, record.expiresAt);
    await this.deps.store.setIndex({
      streamId: record.streamId,
      deviceId: record.deviceId,
      dueAt,
      phase: established ? "established" : "handshake",
    });
  }

  /**
   * Side effects of reaching a terminal state, idempotent. The index row turns "closed" last, so
   * if the relay cannot be reached now the sweeper sees a terminal record with a live index row
   * and finishes the job.
   */
  private async finalize(record: StreamRecord, done: { slotReleased?: boolean } = {}): Promise<void> {
    const { store, relay } = this.deps;
    if (!done.slotReleased) await store.releaseSlot(record);
    await relay.closeGroup(
      relayGroup(record.streamId),
      `${record.closeCode ?? "Closed"}: ${record.closeReason ?? ""}`,
    );
    await store.setIndex({
      streamId: record.streamId,
      deviceId: record.deviceId,
      dueAt: (record.closedAt ?? this.now()) + this.retentionMs(),
      phase: "closed",
    });
  }

  /** After a transition the caller's answer must not depend on the relay being reachable. */
  private async finalizeOrDefer(record: StreamRecord, done: { slotReleased?: boolean }): Promise<void> {
    try {
      await this.finalize(record, done);
    } catch (err) {
      this.deps.logger.log("warn", "stream.finalize.deferred", {
        streamId: record.streamId,
        deviceId: record.deviceId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  // ---- the read-decide-write loop -------------------------------------------------------------

  private async mutate<R>(
    deviceId: string,
    streamId: string,
    decide: (record: StreamRecord, now: number) => Decision<R>,
    context: { side?: Side | Closer; caller?: string },
  ): Promise<{ result: R; record: StreamRecord } | undefined> {
    const cached = this.recent.get(streamId);
    let current = cached?.value.deviceId === deviceId ? cached : undefined;
    let fromCache = current !== undefined;
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      current ??= await this.deps.store.get(deviceId, streamId);
      if (!current) return undefined;
      const decision = decide(current.value, this.now());
      if (!decision.next) {
        // An answer must not rest on a remembered record another instance may have moved on from.
        if (fromCache && !this.finalInMemory(current.value)) {
          current = undefined;
          fromCache = false;
          attempt--;
          continue;
        }
        return { result: decision.result, record: current.value };
      }
      // The write that ends a stream frees its slot with it: one transaction, no slot left behind.
      const ends = isActive(current.value.state) && !isActive(decision.next.state);
      let written: Versioned<StreamRecord>;
      try {
        written = await this.deps.store.replace(current, decision.next, { releaseSlot: ends });
      } catch (err) {
        if (!(err instanceof EtagConflictError)) throw err;
        this.recent.delete(streamId);
        // A stale cache entry is not a conflict between writers; it does not use up a retry.
        if (fromCache) attempt--;
        current = undefined;
        fromCache = false;
        continue;
      }
      this.recent.set(written);
      const before = current.value;
      const after = written.value;
      if (before.state !== after.state) {
        this.logTransition(after, before, context);
        if (!isActive(after.state)) await this.finalizeOrDefer(after, { slotReleased: ends });
        else if (after.state === "Established") await this.schedule(after);
      }
      return { result: decision.result, record: after };
    }
    throw new Error(`stream ${streamId}: ${MAX_CONFLICT_RETRIES} write conflicts in a row`);
  }

  private logTransition(
    after: StreamRecord,
    before: StreamRecord | undefined,
    context: { side?: Side | Closer; caller?: string },
  ): void {
    const now = this.now();
    this.deps.logger.log("info", "stream.transition", {
      streamId: after.streamId,
      deviceId: after.deviceId,
      ...(after.moduleId !== undefined ? { moduleId: after.moduleId } : {}),
      name: after.name,
      side: context.side ?? after.closedBy,
      from: before?.state ?? null,
      to: after.state,
      ...(after.closeCode ? { code: after.closeCode, reason: after.closeReason } : {}),
      ageMs: now - after.createdAt,
      ...(after.establishedAt !== undefined && after.acceptedAt !== undefined
        ? { handshakeMs: after.establishedAt - after.createdAt }
        : {}),
      caller: context.caller ?? after.openedBy,
    });
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

interface SignalFailure {
  state: HandshakeFailure;
  code: CloseCode;
  message: string;
}

/** Anything that is not a classified direct-method error counts as an upstream failure. */
function classifySignalError(err: unknown): SignalFailure {
  const kind = err instanceof DirectMethodError ? err.kind : "Upstream";
  const detail = err instanceof Error ? err.message : String(err);
  switch (kind) {
    case "DeviceNotFound":
      return { state: "Failed", code: "DeviceNotFound", message: "the device is not registered in IoT Hub" };
    case "ModuleNotFound":
      return { state: "Failed", code: "ModuleNotFound", message: "the module is not registered in IoT Hub" };
    case "DeviceNotOnline":
      return {
        state: "DeviceOffline",
        code: "DeviceNotOnline",
        message: "the device is not connected to IoT Hub",
      };
    case "Timeout":
      return { state: "TimedOut", code: "DeviceTimeout", message: "the device did not answer in time" };
    case "Throttled":
      return { state: "Failed", code: "Throttled", message: "IoT Hub throttled the direct method" };
    default:
      return { state: "Failed", code: "UpstreamError", message: `IoT Hub failed: ${detail}` };
  }
}

function versionMismatch(deviceVersions: number[] | undefined): string {
  const speaks = deviceVersions?.length ? deviceVersions.join(", ") : "an unknown version";
  return (
    `the device's agent does not speak stream offer version ${OFFER_VERSION} (it speaks ${speaks}); ` +
    "update the device agent or use a control plane of a matching version"
  );
}

/** The API error for a stream that ended before it could be used; one table for every path. */
export function errorForEnded(record: StreamRecord): ApiError {
  const reason = record.closeReason ?? record.state;
  switch (record.closeCode) {
    case "StreamRejected":
      return Errors.conflict("StreamRejected", `The device rejected the stream: ${reason}`, {
        reason,
        ...(record.responseData !== undefined ? { data: JSON.parse(record.responseData) as unknown } : {}),
      });
    case "UnsupportedOfferVersion":
      return Errors.conflict("UnsupportedOfferVersion", `The device cannot take the stream: ${reason}`, {
        offerVersion: OFFER_VERSION,
      });
    case "DeviceNotFound":
      return Errors.notFound("DeviceNotFound", `Device '${record.deviceId}' is not registered in IoT Hub.`);
    case "ModuleNotFound":
      return Errors.notFound(
        "ModuleNotFound",
        `Module '${record.moduleId ?? ""}' of device '${record.deviceId}' is not registered in IoT Hub.`,
      );
    case "DeviceNotOnline":
      return Errors.notFound("DeviceNotOnline", `Device '${record.deviceId}' is not connected to IoT Hub.`);
    case "DeviceTimeout":
      return Errors.deviceTimeout(`Device '${record.deviceId}' did not answer the stream request in time.`);
    case "Throttled":
      return Errors.throttled("IoT Hub is throttling direct methods; retry later.", THROTTLED_RETRY_SECONDS);
    case "UpstreamError":
      return Errors.upstreamUnavailable(`An upstream service failed: ${reason}`);
    case "InvalidDeviceResponse":
      return Errors.invalidDeviceResponse(
        `Device '${record.deviceId}' answered the stream request badly: ${reason}`,
      );
    default:
      return Errors.conflict("StreamClosed", `The stream ended during the handshake: ${reason}`, {
        state: record.state,
      });
  }
}
