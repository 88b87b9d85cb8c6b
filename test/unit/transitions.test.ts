import { type StreamRecord, parseRelayUserId, relayUserId } from "../../shared/streams/model";
import {
  type Decision,
  decideAccepted,
  decideBytesReported,
  decideClose,
  decideConnect,
  decideDisconnected,
  decideHandshakeFailed,
  decideSweep,
} from "../../shared/streams/transitions";

const T0 = 1_700_000_000_000;
const DEADLINE = T0 + 60_000;

function requested(overrides: Partial<StreamRecord> = {}): StreamRecord {
  return {
    streamId: "AAAAAAAAAAAAAAAAAAAAAA",
    deviceId: "Dev-1",
    name: "ssh",
    state: "Requested",
    openedBy: "sas:service",
    createdAt: T0,
    handshakeDeadline: DEADLINE,
    slot: 0,
    ...overrides,
  };
}

/** Applies decisions in order, as the service does after each successful write. */
function run(
  record: StreamRecord,
  steps: ((r: StreamRecord) => Decision<unknown>)[],
): { record: StreamRecord; results: unknown[] } {
  const results: unknown[] = [];
  let current = record;
  for (const step of steps) {
    const d = step(current);
    results.push(d.result);
    if (d.next) current = d.next;
  }
  return { record: current, results };
}

const deviceConnect =
  (id = "dev-conn", t = T0 + 10) =>
  (r: StreamRecord) =>
    decideConnect(r, "device", id, t);
const serviceConnect =
  (id = "svc-conn", t = T0 + 20) =>
  (r: StreamRecord) =>
    decideConnect(r, "service", id, t);
const accept =
  (t = T0 + 15) =>
  (r: StreamRecord) =>
    decideAccepted(r, t, '{"port":22}');
const disconnect =
  (side: "device" | "service", id: string, t = T0 + 30) =>
  (r: StreamRecord) =>
    decideDisconnected(r, side, id, "peer went away", t);

describe("relay user ids", () => {
  it("encode stream and side and parse back", () => {
    expect(parseRelayUserId(relayUserId("AAAAAAAAAAAAAAAAAAAAAA", "device"))).toEqual({
      streamId: "AAAAAAAAAAAAAAAAAAAAAA",
      side: "device",
    });
  });
  it.each([undefined, "", "x.device", "AAAAAAAAAAAAAAAAAAAAAA.admin", "AAAAAAAAAAAAAAAAAAAAAA", ".device"])(
    "refuse %p",
    (userId) => expect(parseRelayUserId(userId)).toBeUndefined(),
  );
});

describe("the happy path", () => {
  it("device joins, device accepts, service joins: Established", () => {
    const { record, results } = run(requested(), [deviceConnect(), accept(), serviceConnect()]);
    expect(results).toEqual([{ accept: true }, { ok: true }, { accept: true }]);
    expect(record.state).toBe("Established");
    expect(record.establishedAt).toBe(T0 + 20);
    expect(record.responseData).toBe('{"port":22}');
  });
});

describe("races, each with its expected outcome", () => {
  it("the service side joining before the device accepted is refused, and may join after", () => {
    const { record, results } = run(requested(), [
      deviceConnect(),
      serviceConnect("early"),
      accept(),
      serviceConnect("late"),
    ]);
    expect(results[1]).toEqual({
      accept: false,
      reason: "the service side may join only after the device accepted",
    });
    expect(results[3]).toEqual({ accept: true });
    expect(record.serviceConnectionId).toBe("late");
    expect(record.state).toBe("Established");
  });

  it("a duplicated connect event for the same connection is accepted again and changes nothing", () => {
    const once = run(requested(), [deviceConnect("c1")]).record;
    const twice = decideConnect(once, "device", "c1", T0 + 11);
    expect(twice).toEqual({ result: { accept: true } });
  });

  it("a connect retried by Web PubSub after the deadline is accepted if an earlier attempt was recorded in time", () => {
    // Azure retries connect after 1, 3 and 5 s; an attempt whose answer was lost was still processed.
    const once = run(requested(), [deviceConnect("c1")]).record;
    expect(decideConnect(once, "device", "c1", DEADLINE + 9_000)).toEqual({ result: { accept: true } });
  });

  it("a second connection with the same side's credential is refused: credentials are single-use", () => {
    const { results } = run(requested(), [deviceConnect("c1"), deviceConnect("c2")]);
    expect(results[1]).toEqual({ accept: false, reason: "the device relay credential was already used" });
  });

  it("a connect after the handshake deadline is refused", () => {
    const { results } = run(requested(), [deviceConnect("c1", DEADLINE + 1)]);
    expect(results[0]).toEqual({ accept: false, reason: "the handshake deadline has passed" });
  });

  it("the device disconnecting before its accept arrives makes the accept fail", () => {
    const { record, results } = run(requested(), [
      deviceConnect("c1"),
      disconnect("device", "c1", T0 + 12),
      accept(),
    ]);
    expect(record.state).toBe("Closed");
    expect(results[2]).toEqual({ ok: false, state: "Closed", reason: "peer went away" });
  });

  it("a late accept after the sweeper timed the stream out does not revive it", () => {
    const timedOut = decideSweep(requested(), DEADLINE + 1, { device: false, service: false }).next!;
    expect(timedOut.state).toBe("TimedOut");
    expect(decideAccepted(timedOut, DEADLINE + 2).result).toEqual({
      ok: false,
      state: "TimedOut",
      reason: "both sides did not join the relay before the handshake deadline",
    });
  });

  it("disconnected is terminal from every active state and records the side", () => {
    for (const steps of [
      [deviceConnect("c1")],
      [deviceConnect("c1"), accept()],
      [deviceConnect("c1"), accept(), serviceConnect()],
    ]) {
      const before = run(requested(), steps).record;
      const d = decideDisconnected(before, "device", "c1", "", T0 + 40);
      expect(d.next).toMatchObject({ state: "Closed", closedBy: "device", closeCode: "SideDisconnected" });
      expect(d.next!.closeReason).toBe("the device side disconnected");
    }
  });

  it("disconnected names the other connection to close", () => {
    const established = run(requested(), [deviceConnect("d1"), accept(), serviceConnect("s1")]).record;
    expect(decideDisconnected(established, "service", "s1", "bye", T0 + 50).result).toEqual({
      closed: true,
      otherConnectionId: "d1",
    });
  });

  it("duplicated, late or foreign disconnected events are harmless", () => {
    const established = run(requested(), [deviceConnect("d1"), accept(), serviceConnect("s1")]).record;
    // A connection that was refused (never recorded) ends nothing.
    expect(decideDisconnected(established, "device", "intruder", "x", T0 + 50)).toEqual({
      result: { closed: false },
    });
    const closed = decideDisconnected(established, "device", "d1", "x", T0 + 50).next!;
    // The second disconnected (the other side torn down by us, or a duplicate) changes nothing.
    expect(decideDisconnected(closed, "service", "s1", "x", T0 + 51)).toEqual({ result: { closed: false } });
    expect(decideDisconnected(closed, "device", "d1", "x", T0 + 51)).toEqual({ result: { closed: false } });
  });

  it("a connect arriving after the stream closed is refused", () => {
    const closed = run(requested(), [deviceConnect("d1"), accept(), disconnect("device", "d1")]).record;
    expect(decideConnect(closed, "service", "s1", T0 + 40).result).toEqual({
      accept: false,
      reason: "the stream is Closed",
    });
  });

  it("every order of the device connect, the accept and a duplicate connect ends Accepted with one device connection", () => {
    const steps = [deviceConnect("d1", T0 + 1), accept(T0 + 2), deviceConnect("d1", T0 + 3)];
    for (const order of [
      [0, 1, 2],
      [1, 0, 2],
      [0, 2, 1],
      [1, 2, 0],
    ]) {
      const { record } = run(
        requested(),
        order.map((i) => steps[i]!),
      );
      expect(record.state).toBe("Accepted");
      expect(record.deviceConnectionId).toBe("d1");
    }
  });

  it("a rejection only ends a stream that is still being set up", () => {
    const rejected = decideHandshakeFailed(
      requested(),
      "Rejected",
      "StreamRejected",
      "busy",
      T0 + 5,
      '{"x":1}',
    );
    expect(rejected.next).toMatchObject({
      state: "Rejected",
      closedBy: "device",
      closeReason: "busy",
      responseData: '{"x":1}',
    });
    const established = run(requested(), [deviceConnect(), accept(), serviceConnect()]).record;
    expect(decideHandshakeFailed(established, "TimedOut", "DeviceTimeout", "late", T0 + 5)).toEqual({
      result: { changed: false },
    });
  });
});

describe("the sweeper", () => {
  const established = () => run(requested(), [deviceConnect("d1"), accept(), serviceConnect("s1")]).record;

  it("leaves a stream alone before its deadline", () => {
    expect(decideSweep(requested(), DEADLINE - 1, undefined)).toEqual({ result: { action: "none" } });
  });

  it("times out a handshake past its deadline when the relay shows the sides are not both there", () => {
    const accepted = run(requested(), [deviceConnect("d1"), accept()]).record;
    const d = decideSweep(accepted, DEADLINE + 1, { device: true, service: false });
    expect(d.result).toEqual({ action: "timedOut" });
    expect(d.next).toMatchObject({
      state: "TimedOut",
      closeCode: "HandshakeTimeout",
      closedBy: "control-plane",
    });
  });

  it("repairs instead of killing when the relay shows both recorded connections", () => {
    const both = { ...run(requested(), [deviceConnect("d1"), accept()]).record, serviceConnectionId: "s1" };
    const d = decideSweep(both, DEADLINE + 1, { device: true, service: true });
    expect(d.result).toEqual({ action: "repaired" });
    expect(d.next!.state).toBe("Established");
  });

  it("closes an established stream whose connection is gone (a lost disconnected event)", () => {
    const d = decideSweep(established(), DEADLINE + 1, { device: true, service: false });
    expect(d.result).toEqual({ action: "lost", side: "service" });
    expect(d.next).toMatchObject({ state: "Closed", closeCode: "ConnectionLost" });
  });

  it("keeps a healthy established stream, whatever its age, when no lifetime is set", () => {
    expect(decideSweep(established(), T0 + 365 * 86400_000, { device: true, service: true })).toEqual({
      result: { action: "none" },
    });
  });

  it("applies the optional maximum lifetime", () => {
    const limited = { ...established(), expiresAt: T0 + 3600_000 };
    expect(decideSweep(limited, T0 + 3600_000, { device: true, service: true }).next).toMatchObject({
      state: "Closed",
      closeCode: "MaxLifetimeReached",
    });
  });

  it("does nothing to a terminal stream", () => {
    const closed = decideClose(established(), "api", "ClosedByApi", "by test", T0 + 99).next!;
    expect(decideSweep(closed, DEADLINE + 1, { device: false, service: false })).toEqual({
      result: { action: "none" },
    });
    expect(decideClose(closed, "api", "ClosedByApi", "again", T0 + 100)).toEqual({
      result: { closed: false },
    });
  });
});

describe("byte reports", () => {
  it("are recorded per side in any state, once per connection, only from the side's connection", () => {
    const joined = { ...requested(), deviceConnectionId: "dev-1" };
    const closed = decideClose(joined, "api", "ClosedByApi", "x", T0).next!;
    const first = decideBytesReported(closed, "device", "dev-1", 123);
    expect(first).toMatchObject({
      result: { accepted: true },
      next: { bytesFromDevice: 123, state: "Closed" },
    });
    expect(decideBytesReported(first.next!, "device", "dev-1", 456)).toEqual({
      result: { accepted: false, reason: "this connection already reported" },
    });
    expect(decideBytesReported(closed, "device", "dev-2", 1)).toEqual({
      result: { accepted: false, reason: "not the device side's connection" },
    });
    expect(decideBytesReported(closed, "service", "dev-1", 1).next).toBeUndefined();
  });
});
