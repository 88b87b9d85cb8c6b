/**
 * The close answer (docs/tunnel-protocol.md §4): the side that receives a CLOSE reports its bytes
 * and answers, and the closer stays on the relay until that answer, so the relay's teardown of the
 * late side cannot cost the stream its byte count.
 */
import { EventEmitter, once } from "node:events";
import { performance } from "node:perf_hooks";
import {
  CLOSE_ANSWER_TIMEOUT_MS,
  type TunnelCloseInfo,
  TunnelSession,
  type TunnelSessionOptions,
  type TunnelTransport,
  decodeFrame,
} from "../../client/tunnel";
import { echoChannels } from "./helpers";

type Role = "service" | "device";
/** What the relay saw, in order: reports it took, CLOSE frames, and who left by itself. */
type Seen = { side: Role; what: "report" | "close" | "leave"; bytesSent?: number };

/**
 * One member of a relay that behaves as Web PubSub with the control plane behind it: it takes a
 * member's byte report only while that member is connected, and the moment one member leaves, it
 * ends the other. `hold()` models a late event loop: frames already received wait unprocessed, and a
 * teardown meanwhile leaves the member unable to send (a WebSocket is CLOSING as soon as the
 * relay's close frame is read, before the messages queued ahead of it are emitted); its "close"
 * follows those messages.
 */
class RelayMember extends EventEmitter implements TunnelTransport {
  peer!: RelayMember;
  gone = false;
  reporter: () => number = () => 0;
  private reported = false;
  private holding = false;
  private scheduled = false;
  private readonly inbox: Uint8Array[] = [];
  private endReason: string | undefined;
  private ended = false;

  constructor(
    readonly side: Role,
    private readonly seen: Seen[],
  ) {
    super();
  }

  send(frame: Uint8Array): void {
    if (this.gone) return;
    const decoded = decodeFrame(frame);
    if (decoded.ok && decoded.frame.type === "close") this.seen.push({ side: this.side, what: "close" });
    this.peer.receive(frame);
  }

  sendReport(): void {
    if (this.reported || this.gone) return;
    this.reported = true;
    this.seen.push({ side: this.side, what: "report", bytesSent: this.reporter() });
  }

  /** Answering a CLOSE, a member lingers until the closer has left (RelayConnection's linger). */
  close(reason: string, answeringPeer = false): void {
    if (this.gone) return;
    this.sendReport();
    if (answeringPeer) return;
    this.seen.push({ side: this.side, what: "leave" });
    this.end(reason);
    this.peer.end("PeerDisconnected");
  }

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    this.pump();
  }

  private receive(frame: Uint8Array): void {
    if (this.gone) return;
    this.inbox.push(frame);
    this.pump();
  }

  private end(reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.endReason = reason;
    this.pump();
  }

  private pump(): void {
    if (this.holding || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (!this.holding && this.inbox.length > 0) this.emit("message", this.inbox.shift()!);
      if (this.holding || this.endReason === undefined || this.ended) return;
      this.ended = true;
      this.emit("close", this.endReason);
    });
  }
}

type SideOptions = Partial<Omit<TunnelSessionOptions, "role" | "transport">>;

async function openTunnel(service: SideOptions = {}, device: SideOptions = {}) {
  const seen: Seen[] = [];
  const relay = { service: new RelayMember("service", seen), device: new RelayMember("device", seen) };
  relay.service.peer = relay.device;
  relay.device.peer = relay.service;
  const sessions = {
    service: new TunnelSession({ role: "service", transport: relay.service, ...service }),
    device: new TunnelSession({ role: "device", transport: relay.device, ...device }),
  };
  for (const role of ["service", "device"] as const)
    relay[role].reporter = () => sessions[role].stats.bytesSent;
  const closed = {
    service: once(sessions.service, "close").then(([info]) => info as TunnelCloseInfo),
    device: once(sessions.device, "close").then(([info]) => info as TunnelCloseInfo),
  };
  const left = {
    service: once(relay.service, "close"),
    device: once(relay.device, "close"),
  };
  echoChannels(sessions.device);
  sessions.device.start();
  sessions.service.start();
  await sessions.service.waitReady();
  await sessions.device.waitReady();
  // Bytes both ways, so each side has a count of its own to report.
  const channel = await sessions.service.openChannel("echo");
  channel.on("error", () => undefined); // a device that closes the stream resets it
  const echoed = once(channel, "data");
  channel.write(Buffer.alloc(1000, 7));
  await echoed;
  return { relay, sessions, closed, left, seen };
}

const of = (seen: Seen[], side: Role) => seen.filter((s) => s.side === side).map((s) => s.what);

describe("tunnel close answer (docs/tunnel-protocol.md §4)", () => {
  it("a side late to process the CLOSE still reports: the closer waits for its answer", async () => {
    const t = await openTunnel();
    expect(t.sessions.service.closeAnswer).toBe(true);
    t.relay.device.hold();
    t.sessions.service.close();
    // The application's close is immediate; only the relay connection waits for the answer.
    expect(t.sessions.service.closed).toBe(true);
    t.relay.device.release();
    const [deviceInfo] = await Promise.all([t.closed.device, t.left.service, t.left.device]);
    expect(deviceInfo).toMatchObject({ reason: "Normal", byPeer: true });
    expect(t.seen).toContainEqual({ side: "service", what: "report", bytesSent: 1000 });
    expect(t.seen).toContainEqual({ side: "device", what: "report", bytesSent: 1000 });
    // Each report goes out before its side's CLOSE, and the closer is the first to leave.
    expect(of(t.seen, "service")).toEqual(["report", "close", "leave"]);
    expect(of(t.seen, "device")).toEqual(["report", "close"]);
    expect(t.seen.find((s) => s.what === "leave")?.side).toBe("service");
  });

  it("crossing CLOSEs answer each other: both sides report, neither waits for the bound", async () => {
    const t = await openTunnel();
    t.relay.service.hold();
    t.relay.device.hold();
    const started = performance.now();
    t.sessions.service.close();
    t.sessions.device.close("GoingAway");
    t.relay.service.release();
    t.relay.device.release();
    await Promise.all([t.left.service, t.left.device]);
    expect(performance.now() - started).toBeLessThan(CLOSE_ANSWER_TIMEOUT_MS);
    expect(of(t.seen, "service").slice(0, 2)).toEqual(["report", "close"]);
    expect(of(t.seen, "device").slice(0, 2)).toEqual(["report", "close"]);
  });

  it("a peer that never answers holds the closer's relay connection no longer than the bound", async () => {
    const t = await openTunnel();
    t.relay.device.hold(); // a hung device: never processes the CLOSE
    const started = performance.now();
    t.sessions.service.close();
    await t.left.service;
    const waited = performance.now() - started;
    // Timers never fire early in Node; rounding of the clock is all the slack needed.
    expect(waited).toBeGreaterThanOrEqual(CLOSE_ANSWER_TIMEOUT_MS - 1);
    expect(waited).toBeLessThan(CLOSE_ANSWER_TIMEOUT_MS + 10_000);
    expect(of(t.seen, "service")).toEqual(["report", "close", "leave"]);
  });

  it("a close for an error does not wait for an answer", async () => {
    const t = await openTunnel();
    t.relay.device.hold();
    t.sessions.service.close("InternalError", "giving up");
    expect(t.relay.service.gone).toBe(true);
    expect(of(t.seen, "service")).toEqual(["report", "close", "leave"]);
    t.relay.device.release();
    await t.left.device;
  });

  describe.each([
    ["the device", {}, { closeAnswer: false }],
    ["the service", { closeAnswer: false }, {}],
  ])("with %s released before the close answer", (_older, service: SideOptions, device: SideOptions) => {
    it("the service's CLOSE is not answered and the service leaves at once (today's behaviour)", async () => {
      const t = await openTunnel(service, device);
      expect(t.sessions.service.closeAnswer).toBe(false);
      expect(t.sessions.device.closeAnswer).toBe(false);
      t.sessions.service.close();
      // No wait for an answer: the relay connection is gone with the close.
      expect(t.relay.service.gone).toBe(true);
      expect(of(t.seen, "service")).toEqual(["report", "close", "leave"]);
      await Promise.all([t.closed.device, t.left.device]);
      expect(of(t.seen, "device")).not.toContain("close");
    });

    it("the device's CLOSE is not answered and the device leaves at once", async () => {
      const t = await openTunnel(service, device);
      t.sessions.device.close("GoingAway");
      expect(t.relay.device.gone).toBe(true);
      await Promise.all([t.closed.service, t.left.service]);
      expect(of(t.seen, "service")).not.toContain("close");
    });
  });
});
