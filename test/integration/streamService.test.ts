import { TableClient } from "@azure/data-tables";
import { ApiError } from "../../shared/errors";
import { DirectMethodError } from "../../shared/iothub";
import { MAX_PAGES_PER_LIST, TableStreamStore } from "../../shared/store/streamStore";
import { relayGroup, relayUserId } from "../../shared/streams/model";
import { StreamService, type StreamLimits } from "../../shared/streams/service";
import { useAzurite } from "../helpers/azurite";
import { MemoryRelay, ScriptedSignaller, joiningDevice } from "../helpers/fakes";

const azurite = useAzurite();

let tableCounter = 0;

/** Counts the table operations the store makes, by TableClient method. */
function countingTable(table: TableClient, counts: Map<string, number>): TableClient {
  return new Proxy(table, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || typeof key !== "string") return value;
      return (...args: unknown[]) => {
        counts.set(key, (counts.get(key) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

function setup(
  limits: Partial<StreamLimits> = {},
  clock?: { now: number },
  options: { tableName?: string; wrap?: (table: TableClient) => TableClient } = {},
) {
  const relay = new MemoryRelay();
  const signaller = new ScriptedSignaller(async () => ({ status: 200, payload: { accepted: true } }));
  const lines: Record<string, unknown>[] = [];
  const tableName = options.tableName ?? `streams${++tableCounter}`;
  const plain = TableClient.fromConnectionString(azurite().connectionString, tableName, {
    allowInsecureConnection: true,
  });
  const table = options.wrap ? options.wrap(plain) : plain;
  const ready = TableStreamStore.open(table).then(
    (store) =>
      new StreamService({
        store,
        relay,
        signaller,
        logger: { log: (level, event, fields) => lines.push({ level, event, ...fields }) },
        limits: {
          maxPerDevice: 4,
          maxLifetimeSeconds: 0,
          retentionHours: 1,
          relayTokenMinutes: 2,
          ...limits,
        },
        methodName: "deviceStream",
        ...(clock ? { now: () => clock.now } : {}),
      }),
  );
  return { relay, signaller, lines, ready, tableName };
}

async function expectApiError(p: Promise<unknown>, status: number, code: string): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).statusCode).toBe(status);
    expect((err as ApiError).code).toBe(code);
    return err as ApiError;
  }
  throw new Error(`expected ${status} ${code}`);
}

const create = (service: StreamService, deviceId = "Dev#1?x'(y)", extra: object = {}) =>
  service.create({
    deviceId,
    name: "ssh",
    handshakeTimeoutSeconds: 30,
    openedBy: "policy:service",
    caller: { key: "sas:service", maxStreams: 4 },
    ...extra,
  });

describe("StreamService on Azurite", () => {
  it("opens a stream: the device joins, accepts, the service joins, and it is Established", async () => {
    const t = setup();
    const service = await t.ready;
    t.signaller.answer = joiningDevice(() => service, t.relay, { banner: "hi" });
    const created = await create(service, "Dev#1?x'(y)", { data: JSON.stringify({ user: "pi" }) });
    expect(created.record.state).toBe("Accepted");
    expect(created.record.deviceConnectionId).toBe(`dev-${created.record.streamId}`);
    expect(created.deviceResponse).toEqual({ banner: "hi" });
    expect(created.relay.token).toContain(relayUserId(created.record.streamId, "service"));

    const request = t.signaller.calls[0]!.request;
    expect(request.methodName).toBe("deviceStream");
    expect(request.payload).toMatchObject({
      v: 1,
      streamId: created.record.streamId,
      name: "ssh",
      data: { user: "pi" },
    });
    expect((request.payload as { relay: { token: string } }).relay.token).toContain(".device");

    const outcome = await service.onConnect(relayUserId(created.record.streamId, "service"), "svc-1");
    expect(outcome).toMatchObject({ accept: true, group: relayGroup(created.record.streamId) });
    expect((await service.get("Dev#1?x'(y)", created.record.streamId))?.state).toBe("Established");
    // One structured line per transition, and never a token.
    const transitions = t.lines.filter((l) => l.event === "stream.transition").map((l) => l.to);
    expect(transitions).toEqual(["Requested", "Accepted", "Established"]);
    expect(JSON.stringify(t.lines)).not.toContain("token-for");
  });

  it("holds the per-device concurrency limit under parallel creates, and frees slots on close", async () => {
    const t = setup({ maxPerDevice: 3 });
    const service = await t.ready;
    t.signaller.answer = joiningDevice(() => service, t.relay);
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => create(service, "busy")));
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason as ApiError);
    expect(ok).toHaveLength(3);
    expect(refused).toHaveLength(9);
    for (const err of refused) {
      expect(err.code).toBe("TooManyStreams");
      expect(err.headers["Retry-After"]).toBe("5");
    }
    // Another device is not affected.
    await create(service, "other");
    const first = (ok[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof create>>>).value;
    expect(await service.close("busy", first.record.streamId, "policy:admin")).toBe(true);
    await create(service, "busy");
    await expectApiError(create(service, "busy"), 429, "TooManyStreams");
  });

  it("lets exactly one of many racing service connections in: relay credentials are single-use", async () => {
    const t = setup();
    const service = await t.ready;
    t.signaller.answer = joiningDevice(() => service, t.relay);
    const { record } = await create(service);
    const userId = relayUserId(record.streamId, "service");
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) => service.onConnect(userId, `svc-${i}`)),
    );
    expect(outcomes.filter((o) => o.accept)).toHaveLength(1);
    const stored = await service.get(record.deviceId, record.streamId);
    expect(stored?.state).toBe("Established");
    // A token for one stream cannot open another.
    const other = await create(service, "Dev#1?x'(y)");
    expect(await service.onConnect(relayUserId(record.streamId, "service"), "svc-x")).toMatchObject({
      accept: false,
    });
    expect((await service.get(record.deviceId, other.record.streamId))?.serviceConnectionId).toBeUndefined();
  });

  it("survives disconnected racing connect and duplicated events: Closed once, slot freed once, other side torn down", async () => {
    const t = setup({ maxPerDevice: 1 });
    const service = await t.ready;
    t.signaller.answer = joiningDevice(() => service, t.relay);
    const { record } = await create(service, "racer");
    const device = relayUserId(record.streamId, "device");
    await Promise.all([
      service.onDisconnected(device, `dev-${record.streamId}`, "agent killed"),
      service.onConnect(relayUserId(record.streamId, "service"), "svc-1"),
      service.onDisconnected(device, `dev-${record.streamId}`, "agent killed"),
      service.onDisconnected(relayUserId(record.streamId, "service"), "svc-unknown", "never accepted"),
    ]);
    const stored = await service.get("racer", record.streamId);
    expect(stored).toMatchObject({ state: "Closed", closedBy: "device", closeReason: "agent killed" });
    expect(
      t.relay.closed.filter((c) => c.group === relayGroup(record.streamId)).length,
    ).toBeGreaterThanOrEqual(1);
    // The single slot is free again.
    await create(service, "racer");
  });

  it("maps a rejection to 409 with the device's reason and data, and frees the slot", async () => {
    const t = setup({ maxPerDevice: 1 });
    const service = await t.ready;
    t.signaller.answer = async () => ({
      status: 403,
      payload: { reason: "ssh is disabled", data: { hint: "use web" } },
    });
    const err = await expectApiError(create(service, "picky"), 409, "StreamRejected");
    expect(err.details).toEqual({ reason: "ssh is disabled", data: { hint: "use web" } });
    const [stored] = (await service.list("picky", { pageSize: 10 })).items;
    expect(stored).toMatchObject({ state: "Rejected", closeReason: "ssh is disabled", closedBy: "device" });
    expect(t.relay.closed.map((c) => c.group)).toEqual([relayGroup(stored!.streamId)]);
    await expectApiError(create(service, "picky"), 409, "StreamRejected");
  });

  it.each([
    ["data of 70,000 characters", { accepted: true, data: "x".repeat(70_000) }, /data is 70002 UTF-16/],
    ["a reason of 40,000 characters", { accepted: false, reason: "r".repeat(40_000) }, /reason is 40000/],
    ["rejection data of 70,000 characters", { reason: "no", data: { a: "x".repeat(70_000) } }, /data is/],
    [
      "data nested 60,000 levels deep",
      { accepted: true, data: JSON.parse(`${"[".repeat(60_000)}${"]".repeat(60_000)}`) as unknown },
      /nested too deeply/,
    ],
  ])(
    "a device answer with %s fails the stream cleanly with 502 and frees its slot",
    async (_label, payload, why) => {
      const t = setup({ maxPerDevice: 1 });
      const service = await t.ready;
      t.signaller.answer = async () => ({ status: 200, payload });
      const err = await expectApiError(create(service, "hostile"), 502, "InvalidDeviceResponse");
      expect(err.message).toMatch(why);
      const [stored] = (await service.list("hostile", { pageSize: 10 })).items;
      expect(stored).toMatchObject({
        state: "Failed",
        closeCode: "InvalidDeviceResponse",
        closedBy: "control-plane",
      });
      expect(stored!.closeReason).toMatch(why);
      expect(stored!.responseData).toBeUndefined();
      expect(t.relay.closed.map((c) => c.group)).toEqual([relayGroup(stored!.streamId)]);
      // The one slot is free again: the next request reaches the device.
      t.signaller.answer = async () => ({ status: 200, payload: { accepted: true } });
      expect((await create(service, "hostile")).record.state).toBe("Accepted");
    },
  );

  it("stores device data up to what a table string property holds, 32,768 UTF-16 units of JSON", async () => {
    const t = setup();
    const service = await t.ready;
    // ASCII: Azurite corrupts multi-byte characters that straddle a 64 KiB boundary of the body.
    const data = "x".repeat(32_766); // its JSON text, with the quotes, is exactly 32,768 units
    t.signaller.answer = async () => ({ status: 200, payload: { accepted: true, data } });
    const created = await create(service, "roomy");
    expect(created.deviceResponse).toBe(data);
    expect((await service.get("roomy", created.record.streamId))?.responseData).toBe(JSON.stringify(data));
    t.signaller.answer = async () => ({ status: 200, payload: { accepted: true, data: `${data}x` } });
    await expectApiError(create(service, "roomy"), 502, "InvalidDeviceResponse");
    t.signaller.answer = async () => ({ status: 409, payload: { reason: "r".repeat(1024) } });
    const rejected = await expectApiError(create(service, "roomy"), 409, "StreamRejected");
    expect(rejected.details?.reason).toHaveLength(1024);
  });

  it.each([
    ["DeviceNotFound", 404, "DeviceNotFound", "Failed"],
    ["ModuleNotFound", 404, "ModuleNotFound", "Failed"],
    ["DeviceNotOnline", 404, "DeviceNotOnline", "DeviceOffline"],
    ["Timeout", 504, "DeviceTimeout", "TimedOut"],
    ["Throttled", 429, "Throttled", "Failed"],
    ["Upstream", 503, "ServiceUnavailable", "Failed"],
  ] as const)("maps direct-method %s to %d %s", async (kind, status, code, state) => {
    const t = setup();
    const service = await t.ready;
    t.signaller.answer = async () => {
      throw new DirectMethodError(kind, `simulated ${kind}`);
    };
    const err = await expectApiError(create(service, `d-${kind}`), status, code);
    if (code === "Throttled") expect(err.headers["Retry-After"]).toBeDefined();
    const [stored] = (await service.list(`d-${kind}`, { pageSize: 10 })).items;
    expect(stored?.state).toBe(state);
  });

  it("makes a create idempotent with a repeatability id, with a fresh credential for the same stream", async () => {
    const t = setup();
    const service = await t.ready;
    t.signaller.answer = joiningDevice(() => service, t.relay);
    const first = await create(service, "rep", { repeatabilityId: "req-1" });
    const again = await create(service, "rep", { repeatabilityId: "req-1" });
    expect(again.record.streamId).toBe(first.record.streamId);
    expect(t.signaller.calls).toHaveLength(1);
    await expectApiError(
      create(service, "rep", { repeatabilityId: "req-1", name: "web" }),
      409,
      "RepeatabilityConflict",
    );
    const other = await create(service, "rep", { repeatabilityId: "req-2" });
    expect(other.record.streamId).not.toBe(first.record.streamId);
  });

  it("sweeps: times out handshakes, closes streams whose connection vanished, purges after retention", async () => {
    const clock = { now: Date.now() };
    const t = setup({ retentionHours: 1 }, clock);
    const service = await t.ready;
    // A device that accepts without ever joining the relay.
    t.signaller.answer = async () => ({ status: 200, payload: { accepted: true } });
    const stuck = await create(service, "sweep");
    t.signaller.answer = joiningDevice(() => service, t.relay);
    const live = await create(service, "sweep");
    await service.onConnect(relayUserId(live.record.streamId, "service"), "svc-live");
    t.relay.members.get(relayGroup(live.record.streamId))!.push({ connectionId: "svc-live" });

    clock.now += 31_000;
    await service.sweep();
    expect((await service.get("sweep", stuck.record.streamId))?.state).toBe("TimedOut");
    expect((await service.get("sweep", live.record.streamId))?.state).toBe("Established");

    // The service connection disappears and its disconnected event is lost.
    t.relay.members.set(relayGroup(live.record.streamId), [{ connectionId: `dev-${live.record.streamId}` }]);
    clock.now += 6 * 60_000;
    await service.sweep();
    expect(await service.get("sweep", live.record.streamId)).toMatchObject({
      state: "Closed",
      closeCode: "ConnectionLost",
    });

    clock.now += 2 * 3600_000;
    await service.sweep();
    expect(await service.get("sweep", stuck.record.streamId)).toBeUndefined();
    expect(await service.get("sweep", live.record.streamId)).toBeUndefined();
    expect((await service.list("sweep", { pageSize: 10 })).items).toEqual([]);
  });
});

describe("StreamService instances sharing one table", () => {
  /** Two control-plane instances, as when Functions scales out: one table, separate memories. */
  async function pair(limits: Partial<StreamLimits> = {}) {
    const a = setup(limits);
    const b = setup(limits, undefined, { tableName: a.tableName });
    const [serviceA, serviceB] = await Promise.all([a.ready, b.ready]);
    return { a, b, serviceA, serviceB };
  }

  it("hold each caller's share of a device under parallel creates on both, and free it when a stream ends", async () => {
    const { a, b, serviceA, serviceB } = await pair({ maxPerDevice: 6 });
    a.signaller.answer = joiningDevice(() => serviceA, a.relay);
    b.signaller.answer = joiningDevice(() => serviceB, b.relay);
    const echo = { openedBy: "echo-only", caller: { key: "sas:echo-only", maxStreams: 2 } };
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        create(i % 2 ? serviceA : serviceB, "fair", { name: "echo", ...echo }),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason as ApiError);
    expect(ok).toHaveLength(2);
    for (const err of refused) {
      expect(err).toMatchObject({ statusCode: 429, code: "TooManyStreams" });
      expect(err.message).toMatch(/^Caller 'echo-only' already holds 2 active streams on device 'fair'/);
    }
    // Everyone else still has the rest of the device: 4 more, then the device's own limit.
    for (let i = 0; i < 4; i++) await create(i % 2 ? serviceA : serviceB, "fair");
    const full = await expectApiError(create(serviceA, "fair"), 429, "TooManyStreams");
    expect(full.message).toMatch(/^Device 'fair' already has 6/);
    // A stream that ends frees its caller slot with its device slot, in the same transaction.
    const first = (ok[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof create>>>).value;
    expect(await serviceB.close("fair", first.record.streamId, "policy:admin")).toBe(true);
    expect((await create(serviceA, "fair", { name: "echo", ...echo })).record.callerKey).toBe(
      "sas:echo-only",
    );
  });

  it("stay correct when one instance's remembered record is stale", async () => {
    const { a, serviceA, serviceB } = await pair({ maxPerDevice: 1 });
    // The device's relay connect reaches the other instance, between create and accept.
    a.signaller.answer = joiningDevice(() => serviceB, a.relay);
    const { record } = await create(serviceA, "shared");
    expect(record).toMatchObject({ state: "Accepted", deviceConnectionId: `dev-${record.streamId}` });

    // B establishes the stream; A still remembers it as Accepted with no service connection.
    const service = relayUserId(record.streamId, "service");
    expect(await serviceB.onConnect(service, "svc-1")).toMatchObject({ accept: true });
    // From A's memory "svc-1" is nobody, which would end nothing; A must read before it says so.
    await serviceA.onDisconnected(service, "svc-1", "service went away");
    expect(await serviceB.get("shared", record.streamId)).toMatchObject({
      state: "Closed",
      closedBy: "service",
      closeReason: "service went away",
    });
    // The single slot was freed with the closing write.
    const second = await create(serviceA, "shared");

    // B closes the second stream; A's memory would let a service connection in.
    expect(await serviceB.close("shared", second.record.streamId, "policy:admin")).toBe(true);
    const refused = await serviceA.onConnect(relayUserId(second.record.streamId, "service"), "svc-2");
    expect(refused).toEqual({ accept: false, reason: "the stream is Closed" });
  });

  it("treat a record purged behind an instance's back as gone", async () => {
    const { a, serviceA } = await pair();
    a.signaller.answer = joiningDevice(() => serviceA, a.relay);
    const { record } = await create(serviceA, "purged");
    const other = new TableStreamStore(
      TableClient.fromConnectionString(azurite().connectionString, a.tableName, {
        allowInsecureConnection: true,
      }),
    );
    await other.purge("purged", record.streamId);
    await expect(
      serviceA.onReport(relayUserId(record.streamId, "device"), `dev-${record.streamId}`, 7),
    ).resolves.toEqual({ accepted: false, reason: "unknown or expired stream" });
    expect(await serviceA.close("purged", record.streamId, "policy:admin")).toBe(false);
  });
});

describe("StreamService instances and reused stream ids", () => {
  it("a stream id created anew after retention is not taken for its closed predecessor", async () => {
    const a = setup({ retentionHours: 0 });
    const b = setup({ retentionHours: 0 }, undefined, { tableName: a.tableName });
    const [serviceA, serviceB] = await Promise.all([a.ready, b.ready]);
    a.signaller.answer = joiningDevice(() => serviceA, a.relay);
    b.signaller.answer = joiningDevice(() => serviceB, b.relay);
    const first = await create(serviceA, "reused", { repeatabilityId: "req-9" });
    const id = first.record.streamId;
    expect(await serviceA.close("reused", id, "policy:admin")).toBe(true); // A remembers it Closed
    // Retention 0: the sweeper may purge it at once; then the same request id makes the same id.
    await new TableStreamStore(
      TableClient.fromConnectionString(azurite().connectionString, a.tableName, {
        allowInsecureConnection: true,
      }),
    ).purge("reused", id);
    const second = await create(serviceB, "reused", { repeatabilityId: "req-9" });
    expect(second.record).toMatchObject({ streamId: id, state: "Accepted" });
    // The service side's connect event reaches A, which must not answer from its memory.
    expect(await serviceA.onConnect(relayUserId(id, "service"), "svc-new")).toMatchObject({ accept: true });
  });
});

/**
 * A table whose stream queries first answer `empty` empty pages, each with a continuation token,
 * as Table Storage may; then one page with every matching entity. Tokens have the SDK's form.
 */
function emptyPagesFirst(table: TableClient, empty: number, served: { pages: number }): TableClient {
  const token = (next: number) =>
    Buffer.from(JSON.stringify({ nextPartitionKey: "fake", nextRowKey: String(next) })).toString("base64");
  return new Proxy(table, {
    get(target, key, receiver) {
      if (key !== "listEntities") return Reflect.get(target, key, receiver) as unknown;
      return (options: Parameters<TableClient["listEntities"]>[0]) => {
        const real = target.listEntities(options);
        return Object.assign(real, {
          byPage: async function* (settings?: { continuationToken?: string }) {
            const given = settings?.continuationToken;
            let next = given ? Number(JSON.parse(Buffer.from(given, "base64").toString()).nextRowKey) : 0;
            for (; next < empty; next++) {
              served.pages++;
              yield Object.assign([], { continuationToken: token(next + 1) });
            }
            const all = [];
            for await (const e of real) all.push(e);
            served.pages++;
            yield Object.assign(all, { continuationToken: undefined });
          },
        });
      };
    },
  });
}

describe("StreamService listing over empty pages", () => {
  it("reads on past empty pages that carry a continuation token", async () => {
    const served = { pages: 0 };
    const t = setup({}, undefined, { wrap: (table) => emptyPagesFirst(table, 3, served) });
    const service = await t.ready;
    await create(service, "sparse");
    const page = await service.list("sparse", { pageSize: 10 });
    expect(page.items).toHaveLength(1);
    expect(page.continuationToken).toBeUndefined();
    expect(served.pages).toBe(4);
  });

  it("stops after a bounded number of empty pages and hands back a token that resumes", async () => {
    const served = { pages: 0 };
    const empty = MAX_PAGES_PER_LIST + 2;
    const t = setup({}, undefined, { wrap: (table) => emptyPagesFirst(table, empty, served) });
    const service = await t.ready;
    await create(service, "sparser");
    const first = await service.list("sparser", { pageSize: 10 });
    expect(first.items).toEqual([]);
    expect(first.continuationToken).toEqual(expect.any(String));
    expect(served.pages).toBe(MAX_PAGES_PER_LIST);
    const second = await service.list("sparser", {
      pageSize: 10,
      continuationToken: first.continuationToken!,
    });
    expect(second.items).toHaveLength(1);
    expect(second.continuationToken).toBeUndefined();
  });
});

describe("StreamService table operations", () => {
  it("one connection sending 3,000 reports makes one store write; every later report is refused", async () => {
    const counts = new Map<string, number>();
    const wrap = (table: TableClient) => countingTable(table, counts);
    const a = setup({}, undefined, { wrap });
    const b = setup({}, undefined, { wrap, tableName: a.tableName });
    const [serviceA, serviceB] = await Promise.all([a.ready, b.ready]);
    a.signaller.answer = joiningDevice(() => serviceA, a.relay);
    const { record } = await create(serviceA, "chatty");
    const svc = relayUserId(record.streamId, "service");
    await serviceA.onConnect(svc, "svc-1");
    counts.clear();

    const results = [];
    for (let i = 0; i < 3000; i++) results.push(await serviceA.onReport(svc, "svc-1", i));
    expect(results[0]).toEqual({ accepted: true });
    expect(results.slice(1).every((r) => !r.accepted)).toBe(true);
    // One write, and no read at all: the instance's memory of the record answers the repeats.
    expect(Object.fromEntries(counts)).toEqual({ updateEntity: 1 });

    // Another instance, with no memory of the stream, reads but never writes.
    counts.clear();
    for (let i = 0; i < 20; i++) {
      expect(await serviceB.onReport(svc, "svc-1", i)).toEqual({
        accepted: false,
        reason: "this connection already reported",
      });
    }
    expect(counts.get("updateEntity") ?? 0).toBe(0);
    expect(counts.get("submitTransaction") ?? 0).toBe(0);
    // A connection the side did not join with is refused too, and the first count stands.
    expect(await serviceB.onReport(svc, "svc-2", 5)).toMatchObject({ accepted: false });
    expect((await serviceB.get("chatty", record.streamId))?.bytesFromService).toBe(0);
  });

  it("a stream's whole life on one instance reads nothing back and takes ten writes", async () => {
    const counts = new Map<string, number>();
    const t = setup({}, undefined, { wrap: (table) => countingTable(table, counts) });
    const service = await t.ready;
    t.signaller.answer = joiningDevice(() => service, t.relay);
    counts.clear(); // opening the store created the table
    const { record } = await create(service, "frugal");
    const device = relayUserId(record.streamId, "device");
    const svc = relayUserId(record.streamId, "service");
    await service.onConnect(svc, "svc-1");
    expect(await service.close("frugal", record.streamId, "policy:admin")).toBe(true);
    await service.onDisconnected(svc, "svc-1", "closed");
    await service.onDisconnected(device, `dev-${record.streamId}`, "closed");
    await service.onReport(svc, "svc-1", 10);
    await service.onReport(device, `dev-${record.streamId}`, 20);

    expect(await service.get("frugal", record.streamId)).toMatchObject({
      state: "Closed",
      closeCode: "ClosedByApi",
      bytesFromService: 10,
      bytesFromDevice: 20,
    });
    counts.delete("getEntity"); // the get() just above
    // index row, slot + record, device connect, accept, service connect, index → established,
    // close + slot release, index → closed, two byte reports. No reads, no slot query.
    expect(Object.fromEntries(counts)).toEqual({
      createEntity: 1,
      submitTransaction: 2,
      updateEntity: 5,
      upsertEntity: 2,
    });
  });
});

/**
 * The v1 agent as released before offers were versioned (client/sdk/device/offer.ts and listener.ts
 * at 0afc757), reduced to what decides its answer: it takes `v: 1` with these fields and nothing
 * else, and refuses any other `v` with this exact reason and status 400.
 */
function legacyV1Agent(
  payload: unknown,
): { ok: true; streamId: string } | { ok: false; status: 400; reason: string } {
  const p = (payload ?? {}) as Record<string, any>;
  if (p.v !== 1)
    return { ok: false, status: 400, reason: "unsupported payload version (this device speaks v 1)" };
  const str = (v: unknown) => typeof v === "string" && v.length > 0;
  if (!str(p.streamId) || !str(p.name)) return { ok: false, status: 400, reason: "streamId missing" };
  if (!p.relay || !str(p.relay.url) || !str(p.relay.token))
    return { ok: false, status: 400, reason: "relay.url or relay.token missing" };
  if (!str(p.expiresAt) || Number.isNaN(Date.parse(p.expiresAt)))
    return { ok: false, status: 400, reason: "expiresAt missing or not a date" };
  return { ok: true, streamId: p.streamId };
}

describe("offer versions: control plane and agents of different versions", () => {
  it("today's v1 agent takes this control plane's offer, and the stream opens", async () => {
    const t = setup();
    const service = await t.ready;
    const join = joiningDevice(() => service, t.relay);
    t.signaller.answer = async (target, request) => {
      const verdict = legacyV1Agent(request.payload);
      return verdict.ok
        ? join(target, request)
        : { status: verdict.status, payload: { reason: verdict.reason } };
    };
    const created = await create(service, "old-agent");
    expect(created.record.state).toBe("Accepted");
  });

  it("an agent that does not speak the offer's version: 409 UnsupportedOfferVersion, slot freed", async () => {
    const t = setup({ maxPerDevice: 1 });
    const service = await t.ready;
    // As today's agent answers an offer of another major version (the wording it uses, word for word).
    const refusal = legacyV1Agent({ v: 2 }) as { status: number; reason: string };
    t.signaller.answer = async () => ({ status: refusal.status, payload: { reason: refusal.reason } });
    const old = await expectApiError(create(service, "mismatch"), 409, "UnsupportedOfferVersion");
    expect(old.message).toMatch(
      /does not speak stream offer version 1 \(it speaks 1\); update the device agent/,
    );
    expect(old.details).toEqual({ offerVersion: 1 });

    // As a newer agent refuses: its code and the versions it speaks.
    t.signaller.answer = async () => ({
      status: 400,
      payload: { reason: "unsupported offer version", code: "UnsupportedOfferVersion", versions: [3, 4] },
    });
    const newer = await expectApiError(create(service, "mismatch"), 409, "UnsupportedOfferVersion");
    expect(newer.message).toMatch(/\(it speaks 3, 4\)/);
    const records = (await service.list("mismatch", { pageSize: 10 })).items;
    expect(records.map((r) => [r.state, r.closeCode])).toEqual([
      ["Rejected", "UnsupportedOfferVersion"],
      ["Rejected", "UnsupportedOfferVersion"],
    ]);
  });

  it("any other refusal stays StreamRejected with the device's reason", async () => {
    const t = setup();
    const service = await t.ready;
    t.signaller.answer = async () => ({
      status: 400,
      payload: { reason: "expiresAt missing or not a date" },
    });
    const err = await expectApiError(create(service, "other-refusal"), 409, "StreamRejected");
    expect(err.details).toMatchObject({ reason: "expiresAt missing or not a date" });
  });
});
