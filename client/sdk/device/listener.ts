/**
 * The device side: answers the control plane's direct method on an existing azure-iot-device Client
 * or ModuleClient, joins the relay before answering (docs/tunnel-protocol.md §4), and runs the
 * device side of each accepted stream's tunnel.
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Agent } from "node:http";
import { SUPPORTED_OFFER_VERSIONS } from "../../../common/offer";
import { relayGroup } from "../../../common/relay";
import { type ChannelRequest, type TunnelChannel, type TunnelCloseInfo, TunnelSession } from "../../tunnel";
import {
  type RelayConnectOptions,
  type RelayUrlPolicy,
  checkRelayUrl,
  connectRelay,
  proxyAgentFor,
  relayUrlPolicyProblem,
} from "../relay";
import type { TunnelTransport } from "../../tunnel";
import { type StreamOffer, parseOffer } from "./offer";
import type { TunnelTuning } from "../service";

/** A joined relay: a tunnel transport that reports its byte count when it closes deliberately. */
export type RelayTransport = TunnelTransport & {
  reportBytesWith(reporter: () => number): void;
  /** Resolves once the connection itself is gone (its socket closed), not just the tunnel. */
  whenClosed?(): Promise<void>;
};
export type RelayConnector = (options: RelayConnectOptions) => Promise<RelayTransport>;

/** What the application is asked; the relay credentials are never shown to it. */
export interface StreamRequest {
  streamId: string;
  name: string;
  data: unknown;
}

export type StreamDecision = { accept: true; data?: unknown } | { accept: false; reason: string };

/** The subset of Client / ModuleClient this needs: `onDeviceMethod` (Client) or `onMethod` (ModuleClient). */
export interface MethodHost {
  onDeviceMethod?(name: string, cb: (request?: MethodRequest, response?: MethodResponse) => void): void;
  onMethod?(name: string, cb: (request?: MethodRequest, response?: MethodResponse) => void): void;
}
export interface MethodRequest {
  methodName: string;
  payload: unknown;
}
export interface MethodResponse {
  send(status: number, payload: unknown, done: (err?: Error) => void): void;
}

export interface DeviceStreamListenerOptions {
  /** Decides on each stream request. */
  onRequest: (request: StreamRequest) => StreamDecision | Promise<StreamDecision>;
  /**
   * The one relay this device joins: this deployment's Web PubSub endpoint and hub, exactly
   * (`devicestream endpoints` prints both); an `http://` endpoint only with allowInsecure.
   * `agent` (e.g. a proxy agent) is used for every relay; without it HTTPS_PROXY / NO_PROXY are read
   * from `proxyEnv` (default process.env) for each relay URL, ws:// included (see proxyAgentFor).
   */
  relay: RelayUrlPolicy & { agent?: Agent; proxyEnv?: NodeJS.ProcessEnv };
  methodName?: string;
  /** Streams open at once; more are refused with a reason (default 10). */
  maxStreams?: number;
  /** Channels per stream; more are refused with ChannelLimit (default 100: connection pools and parallel downloads open dozens). */
  maxChannelsPerStream?: number;
  tunnel?: TunnelTuning;
  /** Seam for tests: how the relay is joined. */
  connectRelay?: RelayConnector;
}

interface ListenerEvents {
  stream: [stream: IncomingStream];
  /** A request that was answered with an error; for logging (never carries the token). */
  refused: [info: { streamId?: string; status: number; reason: string; detail?: string }];
}

interface IncomingStreamEvents {
  /** A Duplex; `abort(reason, message)` resets it with a chosen reason (e.g. TargetError). */
  channel: [channel: TunnelChannel, request: ChannelRequest];
  close: [info: TunnelCloseInfo];
}

/** An accepted stream. Channels the service opens arrive as "channel" Duplexes. */
export class IncomingStream extends EventEmitter<IncomingStreamEvents> {
  readonly streamId: string;
  readonly name: string;
  readonly data: unknown;
  private readonly ended: Promise<TunnelCloseInfo>;

  constructor(
    request: StreamRequest,
    private readonly session: TunnelSession,
    private readonly relay: RelayTransport,
  ) {
    super();
    this.streamId = request.streamId;
    this.name = request.name;
    this.data = request.data;
    session.on("channel", (channel, req) => {
      // A stream nobody listens to must not leave the service's channel hanging.
      if (this.listenerCount("channel") === 0) channel.abort("Cancelled", "no handler");
      else this.emit("channel", channel, req);
    });
    this.ended = new Promise((resolve) =>
      session.once("close", (info) => {
        resolve(info);
        this.emit("close", info);
      }),
    );
  }

  get openChannelCount(): number {
    return this.session.openChannelCount;
  }

  /** Ends the stream and waits until its relay socket is closed too. */
  async close(reason: "Normal" | "GoingAway" = "Normal", message = ""): Promise<TunnelCloseInfo> {
    this.session.close(reason, message);
    const info = await this.ended;
    // The tunnel ends at once, its socket only after the relay's close handshake: an agent that
    // stopped before that would leave the socket (and its close timer) holding the process.
    await this.relay.whenClosed?.();
    return info;
  }

  whenClosed(): Promise<TunnelCloseInfo> {
    return this.ended;
  }
}

interface Answer {
  status: number;
  payload: Record<string, unknown>;
}

/**
 * Answers remembered per offer, so a repeated delivery of the same offer gets the same answer and
 * no second relay. At most this many, each only until the offer's handshake deadline.
 */
const ANSWER_MEMORY = 1000;
/** The longest handshake the control plane grants (its handshakeTimeoutSeconds maximum). */
const MAX_HANDSHAKE_MS = 60_000;

interface RememberedAnswer {
  answer: Promise<Answer>;
  /** performance.now() after which the offer's credentials cannot be used any more. */
  until: number;
}

export class DeviceStreamListener extends EventEmitter<ListenerEvents> {
  readonly methodName: string;
  private readonly maxStreams: number;
  private readonly maxChannels: number;
  private readonly active = new Map<string, IncomingStream>();
  private readonly answers = new Map<string, RememberedAnswer>();
  private readonly accepting = new Set<Promise<Answer>>();
  private closed = false;

  constructor(
    client: MethodHost,
    private readonly options: DeviceStreamListenerOptions,
  ) {
    super();
    this.methodName = options.methodName ?? "deviceStream";
    this.maxStreams = positive("maxStreams", options.maxStreams ?? 10);
    this.maxChannels = positive("maxChannelsPerStream", options.maxChannelsPerStream ?? 100);
    const problem = relayUrlPolicyProblem(options.relay);
    if (problem) throw new TypeError(problem);
    // The SDK keeps this registration and re-subscribes it after every reconnect; it offers no way
    // to remove it, so close() makes the handler refuse instead.
    const handler = (request?: MethodRequest, response?: MethodResponse) => {
      if (!request || !response) return;
      void this.handle(request.payload).then((answer) =>
        response.send(answer.status, answer.payload, () => undefined),
      );
    };
    if (typeof client.onDeviceMethod === "function") client.onDeviceMethod(this.methodName, handler);
    else if (typeof client.onMethod === "function") client.onMethod(this.methodName, handler);
    else throw new TypeError("client must be an azure-iot-device Client or ModuleClient");
  }

  get streams(): ReadonlyMap<string, IncomingStream> {
    return this.active;
  }

  /** Refuses new requests, closes every open stream and waits for their relay sockets to close. */
  async close(reason: "Normal" | "GoingAway" = "GoingAway"): Promise<void> {
    this.closed = true;
    // A request still joining its relay sees `closed` once joined, and closes that relay itself.
    await Promise.all([
      ...[...this.active.values()].map((s) => s.close(reason)),
      Promise.allSettled(this.accepting),
    ]);
  }

  private handle(payload: unknown): Promise<Answer> {
    const parsed = parseOffer(payload);
    if (!parsed.ok) {
      return Promise.resolve(
        parsed.code
          ? this.refuse(400, parsed.reason, undefined, undefined, {
              code: parsed.code,
              versions: [...SUPPORTED_OFFER_VERSIONS],
            })
          : this.refuse(400, parsed.reason),
      );
    }
    const offer = parsed.offer;
    // Only the very same offer (same stream, relay, credential and deadline) gets a remembered
    // answer: a new offer for a reused stream id (a Repeatability-Request-ID repeated after its
    // record was purged) carries new credentials and must join the relay again.
    const key = offerKey(offer);
    const now = performance.now();
    this.forgetExpired(now);
    const known = this.answers.get(key);
    if (known) return known.answer;
    // The service learns only that the device failed; the error's text may hold local detail.
    const answer = this.answer(offer).catch((err: unknown) =>
      this.refuse(500, "the device failed to handle the request", offer.streamId, String(err)),
    );
    // The deadline by this device's clock, which may be off: bounded by the longest handshake, and
    // a duplicate after it is merely refused (its single-use credential cannot join again).
    const remaining = Math.min(Math.max(Date.parse(offer.expiresAt) - Date.now(), 0), MAX_HANDSHAKE_MS);
    this.answers.set(key, { answer, until: now + remaining });
    if (this.answers.size > ANSWER_MEMORY) this.answers.delete(this.answers.keys().next().value!);
    return answer;
  }

  private forgetExpired(now: number): void {
    for (const [key, entry] of this.answers) if (entry.until <= now) this.answers.delete(key);
  }

  private async answer(offer: StreamOffer): Promise<Answer> {
    const id = offer.streamId;
    if (this.closed) return this.refuse(503, "the device is shutting down", id);
    // Before the application is asked: an offer naming another relay did not come from this
    // deployment's control plane (anyone who may invoke direct methods can send one).
    const { agent: _agent, proxyEnv: _proxyEnv, ...policy } = this.options.relay;
    const relayCheck = checkRelayUrl(offer.relay.url, policy);
    if (!relayCheck.ok) return this.refuse(403, `refused: ${relayCheck.reason}`, id);
    // No expiry check against this device's clock, which may be far off: the relay refuses an
    // expired token itself, and the answer then says why.
    const full = () =>
      this.refuse(429, `the device has ${this.maxStreams} streams open or opening, its limit`, id);
    if (this.active.size + this.accepting.size >= this.maxStreams) return full();
    const request: StreamRequest = { streamId: id, name: offer.name, data: offer.data };
    const decision = await this.options.onRequest(request);
    if (!decision.accept) return this.refuse(403, decision.reason, id);
    // Checked again after the application's await; streams joining their relay count already, so
    // parallel requests cannot all pass the check and then exceed the limit together.
    if (this.active.size + this.accepting.size >= this.maxStreams) return full();
    // close() waits for this: a relay joined while the listener closes is closed again, not left open.
    const accepting = this.accept(offer, request, decision.data);
    this.accepting.add(accepting);
    return accepting.finally(() => this.accepting.delete(accepting));
  }

  /** Joins the stream's relay and starts its tunnel, unless the listener closed meanwhile. */
  private async accept(offer: StreamOffer, request: StreamRequest, data: unknown): Promise<Answer> {
    const id = offer.streamId;
    const { agent, proxyEnv, ...policy } = this.options.relay;
    let relay;
    try {
      const proxy = agent ?? safeProxy(offer.relay.url, proxyEnv);
      relay = await (this.options.connectRelay ?? connectRelay)({
        url: offer.relay.url,
        token: offer.relay.token,
        group: relayGroup(id),
        policy,
        ...(proxy ? { agent: proxy } : {}),
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      return this.refuse(
        code === "RelayNotAllowed" ? 403 : 502,
        `cannot join the relay: ${(err as Error).message}`,
        id,
      );
    }
    if (this.closed) {
      relay.close("refused");
      await relay.whenClosed?.();
      return this.refuse(503, "the device is shutting down", id);
    }
    const session = new TunnelSession({
      ...this.options.tunnel,
      role: "device",
      transport: relay,
      maxChannels: this.maxChannels,
    });
    relay.reportBytesWith(() => session.stats.bytesSent);
    const stream = new IncomingStream(request, session, relay);
    this.active.set(id, stream);
    session.once("close", () => this.active.delete(id));
    session.start();
    this.emit("stream", stream);
    return {
      status: 200,
      payload: { accepted: true, ...(data !== undefined ? { data } : {}) },
    };
  }

  private refuse(
    status: number,
    reason: string,
    streamId?: string,
    detail?: string,
    extra: Record<string, unknown> = {},
  ): Answer {
    this.emit("refused", {
      ...(streamId ? { streamId } : {}),
      status,
      reason,
      ...(detail ? { detail } : {}),
    });
    return { status, payload: { reason, ...extra } };
  }
}

/** A digest, so the memory does not hold the offer's relay credential as a key. */
function offerKey(offer: StreamOffer): string {
  return createHash("sha256")
    .update(
      JSON.stringify([
        offer.streamId,
        offer.name,
        offer.data,
        offer.relay.url,
        offer.relay.token,
        offer.expiresAt,
      ]),
    )
    .digest("base64url");
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

function safeProxy(url: string, env: NodeJS.ProcessEnv | undefined): Agent | undefined {
  try {
    return proxyAgentFor(new URL(url), env);
  } catch {
    return undefined;
  }
}
