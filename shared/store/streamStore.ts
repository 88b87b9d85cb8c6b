/**
 * Stream records in Table Storage.
 *
 * Layout (all keys escaped by encodeKey, since IoT Hub ids may hold characters keys forbid):
 * - a device's partition `<deviceId>` holds its stream records (`s~<streamId>`), its
 *   concurrency slots (`slot~NNNNN`) and each caller's share of them (`cslot~<caller>~NNNNN`).
 *   Both slots are reserved in the same entity-group transaction that creates the record, and
 *   freed in the one that ends it, so the limits hold under parallel creates on any number of
 *   instances without count-then-insert;
 * - the index partitions `idx~<0..7>` hold one row per stream until its record is deleted, with
 *   the time the housekeeping timer must next look at it (`dueAt`). Relay events find a stream by
 *   id through it, and the timer queries it instead of scanning the table.
 */
import {
  RestError,
  TableClient,
  type TableEntityResult,
  type TransactionAction,
  odata,
} from "@azure/data-tables";
import type { StreamRecord, StreamState } from "../streams/model";
import { encodeKey } from "./keys";

export interface Versioned<T> {
  value: T;
  etag: string;
}

export type IndexPhase = "handshake" | "established" | "closed";

export interface IndexEntry {
  streamId: string;
  deviceId: string;
  dueAt: number;
  phase: IndexPhase;
}

export class EtagConflictError extends Error {
  override readonly name = "EtagConflictError";
}
export class SlotsExhaustedError extends Error {
  override readonly name = "SlotsExhaustedError";
  constructor(
    /** Whose limit was reached: the device's, or the caller's share of the device. */
    readonly scope: "device" | "caller",
    message: string,
  ) {
    super(message);
  }
}

export interface SlotLimits {
  /** Concurrent streams of the device, its modules included. */
  maxPerDevice: number;
  /** The caller's share of them: any stable string naming the caller, and its limit. */
  caller: { key: string; max: number };
}
export class StreamExistsError extends Error {
  override readonly name = "StreamExistsError";
}
/** A continuation token this store did not issue; the message says what is wrong, never echoes it. */
export class InvalidContinuationTokenError extends Error {
  override readonly name = "InvalidContinuationTokenError";
}

export interface Page<T> {
  items: T[];
  continuationToken?: string;
}

export interface ListOptions {
  state?: StreamState;
  pageSize: number;
  continuationToken?: string;
}

export interface StreamStore {
  /**
   * Reserves a slot of the device and one of the caller's on it, and creates the record; sets
   * `slot`, `callerKey` and `callerSlot` on the stored value.
   */
  create(record: StreamRecord, limits: SlotLimits): Promise<Versioned<StreamRecord>>;
  get(deviceId: string, streamId: string): Promise<Versioned<StreamRecord> | undefined>;
  findIndex(streamId: string): Promise<IndexEntry | undefined>;
  /**
   * Optimistic replace; throws EtagConflictError when someone else wrote or deleted it first.
   * `releaseSlot` frees the record's slot in the same transaction: only for the write that ends an
   * active stream, which is the one moment the slot is known to be the record's own.
   */
  replace(
    current: Versioned<StreamRecord>,
    next: StreamRecord,
    options?: { releaseSlot?: boolean },
  ): Promise<Versioned<StreamRecord>>;
  /** Frees the record's slots, each only while the record still holds it. */
  releaseSlot(record: StreamRecord): Promise<void>;
  setIndex(entry: IndexEntry): Promise<void>;
  /** Deletes the record and its index row (retention). */
  purge(deviceId: string, streamId: string): Promise<void>;
  deleteIndex(streamId: string): Promise<void>;
  list(deviceId: string, options: ListOptions): Promise<Page<StreamRecord>>;
  /** Index rows whose dueAt has passed, across every index partition. */
  due(now: number): AsyncIterable<IndexEntry>;
}

const INDEX_SHARDS = 8;
/**
 * Table queries may answer an empty page with a continuation token (the service stops at 5 s or
 * a partition boundary). list() reads on past such pages, up to this many, then returns what it
 * has with the token so that one request's work stays bounded.
 */
export const MAX_PAGES_PER_LIST = 10;
const STREAM_PREFIX = "s~";
const SLOT_PREFIX = "slot~";
const CALLER_SLOT_PREFIX = "cslot~";

function indexPartition(streamId: string): string {
  let h = 0;
  for (let i = 0; i < streamId.length; i++) h = (h * 31 + streamId.charCodeAt(i)) >>> 0;
  return `idx~${h % INDEX_SHARDS}`;
}

function slotKey(slot: number): string {
  return SLOT_PREFIX + String(slot).padStart(5, "0");
}

/** encodeKey escapes `~`, so the caller's part cannot run into the slot number. */
function callerSlotPrefix(callerKey: string): string {
  return `${CALLER_SLOT_PREFIX}${encodeKey(callerKey)}~`;
}

function callerSlotKey(callerKey: string, slot: number): string {
  return callerSlotPrefix(callerKey) + String(slot).padStart(5, "0");
}

/** The record's caller slot row, when it holds one (records from before caller limits do not). */
function heldCallerSlot(r: StreamRecord): string | undefined {
  return r.callerKey !== undefined && r.callerSlot !== undefined
    ? callerSlotKey(r.callerKey, r.callerSlot)
    : undefined;
}

/** Free slot numbers below `max`, starting at a random one so parallel creates spread out. */
function freeBelow(max: number, taken: (slot: number) => boolean): number[] {
  const free: number[] = [];
  for (let i = 0; i < max; i++) if (!taken(i)) free.push(i);
  const start = free.length > 0 ? Math.floor(Math.random() * free.length) : 0;
  return [...free.slice(start), ...free.slice(0, start)];
}

type Entity = Record<string, unknown> & { partitionKey: string; rowKey: string };

const OPTIONAL_STRINGS = [
  "moduleId",
  "requestData",
  "responseData",
  "deviceConnectionId",
  "serviceConnectionId",
  "closeCode",
  "closeReason",
  "closedBy",
  "repeatabilityId",
  "callerKey",
] as const;
const OPTIONAL_TIMES = ["acceptedAt", "establishedAt", "closedAt", "expiresAt"] as const;
const OPTIONAL_NUMBERS = ["bytesFromService", "bytesFromDevice"] as const;
const OPTIONAL_INTS = ["callerSlot"] as const;

function toEntity(r: StreamRecord): Entity {
  const e: Entity = {
    partitionKey: encodeKey(r.deviceId),
    rowKey: STREAM_PREFIX + r.streamId,
    streamId: r.streamId,
    deviceId: r.deviceId,
    name: r.name,
    state: r.state,
    openedBy: r.openedBy,
    createdAt: new Date(r.createdAt),
    handshakeDeadline: new Date(r.handshakeDeadline),
    slot: r.slot,
  };
  for (const k of OPTIONAL_STRINGS) if (r[k] !== undefined) e[k] = r[k];
  for (const k of OPTIONAL_TIMES) if (r[k] !== undefined) e[k] = new Date(r[k]);
  for (const k of OPTIONAL_INTS) if (r[k] !== undefined) e[k] = r[k];
  // Int64 in the table: byte counts pass 2^31 on any long transfer.
  for (const k of OPTIONAL_NUMBERS) if (r[k] !== undefined) e[k] = { value: String(r[k]), type: "Int64" };
  return e;
}

function time(v: unknown): number {
  return v instanceof Date ? v.getTime() : new Date(String(v)).getTime();
}

function fromEntity(e: Record<string, unknown>): StreamRecord {
  const r: StreamRecord = {
    streamId: String(e.streamId),
    deviceId: String(e.deviceId),
    name: String(e.name),
    state: String(e.state) as StreamState,
    openedBy: String(e.openedBy),
    createdAt: time(e.createdAt),
    handshakeDeadline: time(e.handshakeDeadline),
    slot: Number(e.slot),
  };
  for (const k of OPTIONAL_STRINGS) {
    const v = e[k];
    if (typeof v === "string") (r as unknown as Record<string, unknown>)[k] = v;
  }
  for (const k of OPTIONAL_TIMES) if (e[k] !== undefined && e[k] !== null) r[k] = time(e[k]);
  for (const k of OPTIONAL_INTS) if (typeof e[k] === "number") r[k] = e[k];
  for (const k of OPTIONAL_NUMBERS) {
    const v = e[k];
    if (v !== undefined && v !== null) r[k] = Number(typeof v === "object" && "value" in v ? v.value : v);
  }
  return r;
}

/**
 * The Tables SDK's token is base64 of `{"nextPartitionKey","nextRowKey"?}` and it decodes whatever
 * it is given with JSON.parse, so a malformed one would surface as a 500 from inside the SDK.
 * Keys the service hands out are printable ASCII (ours are escaped by encodeKey; Azure's are its own
 * opaque ASCII forms).
 */
function checkContinuationToken(token: string): void {
  const fail = (why: string): never => {
    throw new InvalidContinuationTokenError(`not a continuation token this service issued (${why})`);
  };
  const bytes = Buffer.from(token, "base64");
  if (token.length === 0 || bytes.toString("base64") !== token) fail("not canonical base64");
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("latin1"));
  } catch {
    fail("not JSON");
  }
  const isKey = (v: unknown) => typeof v === "string" && /^[\x20-\x7e]{1,1024}$/.test(v);
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("not an object");
  const fields = value as Record<string, unknown>;
  if (!isKey(fields.nextPartitionKey)) fail("no next partition key");
  if (fields.nextRowKey !== undefined && !isKey(fields.nextRowKey)) fail("bad next row key");
  if (Object.keys(fields).some((k) => k !== "nextPartitionKey" && k !== "nextRowKey")) fail("unknown fields");
}

function statusOf(err: unknown): number | undefined {
  return err instanceof RestError ? err.statusCode : undefined;
}

export class TableStreamStore implements StreamStore {
  constructor(private readonly table: TableClient) {}

  static async open(table: TableClient): Promise<TableStreamStore> {
    try {
      await table.createTable();
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
    return new TableStreamStore(table);
  }

  async create(record: StreamRecord, limits: SlotLimits): Promise<Versioned<StreamRecord>> {
    const pk = encodeKey(record.deviceId);
    const { maxPerDevice, caller } = limits;
    const index: IndexEntry = {
      streamId: record.streamId,
      deviceId: record.deviceId,
      dueAt: record.handshakeDeadline,
      phase: "handshake",
    };
    try {
      await this.table.createEntity(this.indexEntity(index));
    } catch (err) {
      if (statusOf(err) === 409) throw new StreamExistsError(`stream ${record.streamId} exists`);
      throw err;
    }
    const keyed = { ...record, callerKey: caller.key };
    try {
      // A device rarely holds more than a few of its slots, so random ones are usually free: try
      // them before paying for the slot query. Then two passes over the free lists, because a
      // racer may take a slot we saw free and only the second pass sees its row.
      const random = (n: number) => Math.floor(Math.random() * n);
      const first = await this.tryCreate(pk, keyed, random(maxPerDevice), random(caller.max));
      if (first) return first;
      for (let pass = 0; pass < 2; pass++) {
        const free = await this.freeSlots(pk, limits);
        if (free.device.length === 0) {
          throw new SlotsExhaustedError(
            "device",
            `device ${record.deviceId} has ${maxPerDevice} active streams`,
          );
        }
        if (free.caller.length === 0) {
          throw new SlotsExhaustedError(
            "caller",
            `the caller has ${caller.max} active streams on the device`,
          );
        }
        const pairs = Math.max(free.device.length, free.caller.length);
        for (let i = 0; i < pairs; i++) {
          const slot = free.device[i % free.device.length]!;
          const callerSlot = free.caller[i % free.caller.length]!;
          const created = await this.tryCreate(pk, keyed, slot, callerSlot);
          if (created) return created;
        }
      }
      throw new SlotsExhaustedError("device", `device ${record.deviceId} has ${maxPerDevice} active streams`);
    } catch (err) {
      await this.deleteIndex(record.streamId).catch(() => undefined);
      throw err;
    }
  }

  /** Both slot rows and the record in one transaction; undefined when a slot is taken. */
  private async tryCreate(
    pk: string,
    record: StreamRecord & { callerKey: string },
    slot: number,
    callerSlot: number,
  ): Promise<Versioned<StreamRecord> | undefined> {
    const stored: StreamRecord = { ...record, slot, callerSlot };
    const holder = { partitionKey: pk, streamId: record.streamId };
    const actions: TransactionAction[] = [
      ["create", { ...holder, rowKey: slotKey(slot) }],
      ["create", { ...holder, rowKey: callerSlotKey(record.callerKey, callerSlot) }],
      ["create", toEntity(stored)],
    ];
    try {
      const response = await this.table.submitTransaction(actions);
      const etag = response.subResponses[actions.length - 1]?.etag;
      if (etag) return { value: stored, etag };
      const reread = await this.get(record.deviceId, record.streamId);
      if (reread) return reread;
      throw new Error("stream record missing right after its creation");
    } catch (err) {
      if (statusOf(err) === 409) return undefined;
      throw err;
    }
  }

  private async freeSlots(pk: string, limits: SlotLimits): Promise<{ device: number[]; caller: number[] }> {
    const taken = new Set<string>();
    const mine = callerSlotPrefix(limits.caller.key);
    const rows = this.table.listEntities({
      queryOptions: {
        filter: odata`PartitionKey eq ${pk} and ((RowKey ge ${SLOT_PREFIX} and RowKey lt ${"slot\u007f"}) or (RowKey ge ${mine} and RowKey lt ${`${mine}\u007f`}))`,
        select: ["RowKey"],
      },
    });
    for await (const row of rows) taken.add(row.rowKey ?? "");
    return {
      device: freeBelow(limits.maxPerDevice, (i) => taken.has(slotKey(i))),
      caller: freeBelow(limits.caller.max, (i) => taken.has(callerSlotKey(limits.caller.key, i))),
    };
  }

  async get(deviceId: string, streamId: string): Promise<Versioned<StreamRecord> | undefined> {
    try {
      const e = await this.table.getEntity(encodeKey(deviceId), STREAM_PREFIX + streamId);
      return { value: fromEntity(e), etag: e.etag };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async findIndex(streamId: string): Promise<IndexEntry | undefined> {
    try {
      const e = await this.table.getEntity(indexPartition(streamId), streamId);
      return this.fromIndexEntity(e);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async replace(
    current: Versioned<StreamRecord>,
    next: StreamRecord,
    options: { releaseSlot?: boolean } = {},
  ): Promise<Versioned<StreamRecord>> {
    try {
      if (options.releaseSlot) {
        const released = await this.replaceReleasingSlot(current, next);
        if (released) return released;
      }
      const response = await this.table.updateEntity(toEntity(next), "Replace", { etag: current.etag });
      if (!response.etag) throw new Error("the table service returned no ETag");
      if (options.releaseSlot) await this.releaseSlot(next);
      return { value: next, etag: response.etag };
    } catch (err) {
      // 404: purged since it was read, which is a concurrent change too; the caller reads again.
      const status = statusOf(err);
      if (status === 412 || status === 404) {
        throw new EtagConflictError(`stream ${next.streamId} changed concurrently`);
      }
      throw err;
    }
  }

  /**
   * The record and the slot delete in one entity-group transaction. undefined when the transaction
   * failed with 404: the record or the slot row is gone, and the caller tells which by writing the
   * record alone and freeing the slot on its own, as the sweeper does.
   */
  private async replaceReleasingSlot(
    current: Versioned<StreamRecord>,
    next: StreamRecord,
  ): Promise<Versioned<StreamRecord> | undefined> {
    const entity = toEntity(next);
    const callerSlot = heldCallerSlot(next);
    try {
      const response = await this.table.submitTransaction([
        ["update", entity, "Replace", { etag: current.etag }],
        ["delete", { partitionKey: entity.partitionKey, rowKey: slotKey(next.slot) }],
        ...(callerSlot !== undefined
          ? [
              [
                "delete",
                { partitionKey: entity.partitionKey, rowKey: callerSlot },
              ] satisfies TransactionAction,
            ]
          : []),
      ]);
      const etag = response.subResponses[0]?.etag;
      if (etag) return { value: next, etag };
      const reread = await this.get(next.deviceId, next.streamId);
      if (!reread) throw new Error("stream record missing right after its update");
      return reread;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async releaseSlot(record: StreamRecord): Promise<void> {
    const pk = encodeKey(record.deviceId);
    const callerSlot = heldCallerSlot(record);
    await this.releaseRow(pk, slotKey(record.slot), record.streamId);
    if (callerSlot !== undefined) await this.releaseRow(pk, callerSlot, record.streamId);
  }

  private async releaseRow(pk: string, rowKey: string, streamId: string): Promise<void> {
    try {
      const slot = await this.table.getEntity(pk, rowKey);
      // The slot may already belong to a newer stream; only its holder may free it.
      if (slot.streamId !== streamId) return;
      await this.table.deleteEntity(pk, rowKey, { etag: slot.etag });
    } catch (err) {
      const status = statusOf(err);
      if (status !== 404 && status !== 412) throw err;
    }
  }

  async setIndex(entry: IndexEntry): Promise<void> {
    await this.table.upsertEntity(this.indexEntity(entry), "Replace");
  }

  async purge(deviceId: string, streamId: string): Promise<void> {
    await this.ignoreMissing(this.table.deleteEntity(encodeKey(deviceId), STREAM_PREFIX + streamId));
    await this.deleteIndex(streamId);
  }

  async deleteIndex(streamId: string): Promise<void> {
    await this.ignoreMissing(this.table.deleteEntity(indexPartition(streamId), streamId));
  }

  async list(deviceId: string, options: ListOptions): Promise<Page<StreamRecord>> {
    if (options.continuationToken !== undefined) checkContinuationToken(options.continuationToken);
    const pk = encodeKey(deviceId);
    const filter = options.state
      ? odata`PartitionKey eq ${pk} and RowKey ge ${STREAM_PREFIX} and RowKey lt ${"s\u007f"} and state eq ${options.state}`
      : odata`PartitionKey eq ${pk} and RowKey ge ${STREAM_PREFIX} and RowKey lt ${"s\u007f"}`;
    // The SDK's page iterator follows the service's continuation tokens by itself.
    const pages = this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } }).byPage({
      maxPageSize: options.pageSize,
      ...(options.continuationToken ? { continuationToken: options.continuationToken } : {}),
    });
    let read = 0;
    for await (const raw of pages) {
      const page = raw as TableEntityResult<Record<string, unknown>>[] & { continuationToken?: string };
      const { continuationToken } = page;
      if (page.length > 0 || !continuationToken || ++read >= MAX_PAGES_PER_LIST) {
        return { items: page.map(fromEntity), ...(continuationToken ? { continuationToken } : {}) };
      }
    }
    return { items: [] };
  }

  async *due(now: number): AsyncIterable<IndexEntry> {
    for (let shard = 0; shard < INDEX_SHARDS; shard++) {
      const rows = this.table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: odata`PartitionKey eq ${`idx~${shard}`} and dueAt le ${new Date(now)}` },
      });
      for await (const row of rows) yield this.fromIndexEntity(row);
    }
  }

  private indexEntity(entry: IndexEntry): Entity {
    return {
      partitionKey: indexPartition(entry.streamId),
      rowKey: entry.streamId,
      deviceId: entry.deviceId,
      dueAt: new Date(entry.dueAt),
      phase: entry.phase,
    };
  }

  private fromIndexEntity(e: Record<string, unknown>): IndexEntry {
    return {
      streamId: String(e.rowKey),
      deviceId: String(e.deviceId),
      dueAt: time(e.dueAt),
      phase: String(e.phase) as IndexPhase,
    };
  }

  private async ignoreMissing(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }
}
