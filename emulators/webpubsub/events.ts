/**
 * Upstream CloudEvents (binary mode) to the hubs' event handlers, as the service sends them:
 * abuse-protection validation, every `ce-*` header, `ce-signature` over the connection id, the
 * service's retry policy (outbound.ts). Blocking events (connect, user events) return the
 * handler's answer; non-blocking ones (connected, disconnected) go through optional injected faults.
 */
import { createHmac, randomUUID } from "node:crypto";
import type { MessageData } from "../../client/webpubsub/codec";
import { toFaultInjector, type EventFault, type EventInfo, type FaultInjector } from "./faults";
import type { ResolvedEventHandler, ResolvedOptions } from "./options";
import { isValidGroupName } from "./service";
import { Outbound, type AttemptFault, type HttpResult } from "./outbound";

export interface EventSubject {
  hub: string;
  connectionId: string;
  userId: string | undefined;
  subprotocol: string | undefined;
}

export interface ConnectRequest {
  claims: Record<string, string[]>;
  query: Record<string, string[]>;
  headers: Record<string, string[]>;
  subprotocols: string[];
}

export type ConnectResult =
  | { accepted: true; userId?: string; groups?: string[]; roles?: string[]; subprotocol?: string }
  | { accepted: false; status: number; body: string };

export type UserEventResult = { ok: true; data?: MessageData } | { ok: false; reason: string };

function contentTypeOf(data: MessageData): string {
  switch (data.kind) {
    case "text":
      return "text/plain; charset=utf-8";
    case "json":
      return "application/json";
    case "binary":
      return "application/octet-stream";
    case "protobuf":
      return "application/x-protobuf";
  }
}

function bodyOf(data: MessageData): Buffer {
  switch (data.kind) {
    case "text":
      return Buffer.from(data.text);
    case "json":
      return Buffer.from(data.json);
    case "binary":
      return Buffer.from(data.bytes.buffer, data.bytes.byteOffset, data.bytes.length);
    case "protobuf":
      return Buffer.from(data.value.buffer, data.value.byteOffset, data.value.length);
  }
}

/**
 * The inverse of contentTypeOf, for handler responses and REST bodies; undefined for other types
 * and for JSON that does not parse (it would otherwise corrupt the JSON frames it is spliced into).
 */
export function dataFromBody(contentType: string | undefined, body: Buffer): MessageData | undefined {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "text/plain") return { kind: "text", text: body.toString("utf8") };
  if (type === "application/json") {
    const json = body.toString("utf8");
    try {
      JSON.parse(json);
    } catch {
      return undefined;
    }
    return { kind: "json", json };
  }
  if (type === "application/octet-stream") return { kind: "binary", bytes: body };
  return undefined;
}

function matchesPattern(pattern: string, event: string): boolean {
  if (pattern.trim() === "*") return true;
  return pattern.split(",").some((p) => p.trim() === event);
}

export class EventDispatcher {
  private readonly outbound: Outbound;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Every handler request not yet answered, blocking ones too (close() does not wait for those). */
  private readonly unanswered = new Set<Promise<unknown>>();
  private readonly delayed = new Map<NodeJS.Timeout, () => void>();
  private readonly perConnection = new Map<string, Promise<void>>();
  private held: (() => void)[] = [];
  private readonly faults: FaultInjector;
  private sequence = 0;
  private closed = false;

  constructor(
    private readonly options: ResolvedOptions,
    /** Host sent as `WebHook-Request-Origin`. */
    private readonly origin: string,
  ) {
    this.faults = toFaultInjector(options.faults);
    this.outbound = new Outbound(options.outbound, origin, options.log);
  }

  private handler(hub: string): ResolvedEventHandler | undefined {
    return this.options.eventHandlers.get(hub.toLowerCase());
  }

  wants(hub: string, event: "connect" | "connected" | "disconnected"): boolean {
    return this.handler(hub)?.systemEvents.includes(event) ?? false;
  }

  /**
   * A refusal carries the handler's status (retried 5xx included) with a generic body, as the
   * official emulator answers (ClientWebSocketEndpoint.cs); a call that never got an answer is 500.
   */
  async connect(subject: EventSubject, request: ConnectRequest): Promise<ConnectResult> {
    if (!this.wants(subject.hub, "connect")) return { accepted: true };
    let res: HttpResult;
    try {
      res = await this.post(subject, "azure.webpubsub.sys.connect", "connect", {
        contentType: "application/json; charset=utf-8",
        body: Buffer.from(JSON.stringify({ ...request, clientCertificates: [] })),
        fault: this.faultFor(subject, "connect", "connect"),
      });
    } catch (err) {
      this.options.log(`connect event for ${subject.connectionId} failed: ${(err as Error).message}`);
      return { accepted: false, status: 500, body: "Dispatching the connect event failed." };
    }
    if (res.status < 200 || res.status >= 300) {
      return {
        accepted: false,
        status: res.status >= 400 && res.status <= 599 ? res.status : 500,
        body: `The connect event handler returned ${res.status}.`,
      };
    }
    if (res.body.length === 0) return { accepted: true };
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body.toString("utf8"));
    } catch {
      return { accepted: false, status: 500, body: "Connect event handler returned invalid JSON." };
    }
    const out: ConnectResult = { accepted: true };
    if (parsed && typeof parsed === "object") {
      const p = parsed as Record<string, unknown>;
      const strings = (v: unknown): string[] | undefined =>
        Array.isArray(v) && v.every((x) => typeof x === "string") ? v : undefined;
      if (typeof p.userId === "string") out.userId = p.userId;
      const groups = strings(p.groups);
      if (groups?.some((g) => !isValidGroupName(g))) {
        return { accepted: false, status: 500, body: "The connect response contains an invalid group." };
      }
      if (groups) out.groups = groups;
      const roles = strings(p.roles);
      if (roles) out.roles = roles;
      if (typeof p.subprotocol === "string") out.subprotocol = p.subprotocol;
    }
    return out;
  }

  /** Whether a handler takes this user event; the service closes a client whose event none takes. */
  wantsUserEvent(hub: string, event: string): boolean {
    const h = this.handler(hub);
    return h !== undefined && matchesPattern(h.userEventPattern, event);
  }

  async userEvent(
    subject: EventSubject,
    event: string,
    data: MessageData | undefined,
  ): Promise<UserEventResult> {
    const payload = data ?? { kind: "text", text: "" };
    let res: HttpResult;
    try {
      res = await this.post(subject, `azure.webpubsub.user.${event}`, event, {
        contentType: contentTypeOf(payload),
        body: bodyOf(payload),
        fault: this.faultFor(subject, "user", event),
      });
    } catch (err) {
      return { ok: false, reason: `event handler failed: ${(err as Error).message}` };
    }
    if (res.status < 200 || res.status >= 300)
      return { ok: false, reason: `event handler returned ${res.status}` };
    if (res.status !== 200 || res.body.length === 0) return { ok: true };
    const reply = dataFromBody(res.headers["content-type"], res.body);
    return reply ? { ok: true, data: reply } : { ok: true };
  }

  /** The injector's answer for a blocking event: only a server error changes anything there. */
  private faultFor(subject: EventSubject, type: "connect" | "user", event: string): EventFault {
    const fault = this.inject(subject, type, event);
    return fault.action === "serverError" ? fault : { action: "deliver" };
  }

  private inject(subject: EventSubject, type: EventInfo["type"], event: string): EventFault {
    const info: EventInfo = {
      hub: subject.hub,
      type,
      event,
      connectionId: subject.connectionId,
      userId: subject.userId,
      sequence: ++this.sequence,
    };
    try {
      return this.faults(info);
    } catch (err) {
      // A broken test hook must not take the emulator down with it.
      this.options.log(`fault injector threw, delivering ${event}: ${(err as Error).message}`);
      return { action: "deliver" };
    }
  }

  /** Fire-and-forget `connected`/`disconnected`, through the fault injector. */
  nonBlocking(subject: EventSubject, type: "connected" | "disconnected", reason?: string): void {
    if (this.closed || !this.wants(subject.hub, type)) return;
    // The id is fixed before faults so a duplicate is recognisable as one, as on the service.
    const id = randomUUID();
    const body = Buffer.from(JSON.stringify(type === "disconnected" ? { reason: reason ?? "" } : {}));
    const fault = this.inject(subject, type, type);
    const send = (): Promise<void> => {
      const p = this.post(subject, `azure.webpubsub.sys.${type}`, type, {
        contentType: "application/json; charset=utf-8",
        body,
        id,
        fault,
      }).then(
        (res) => {
          if (res.status < 200 || res.status >= 300) {
            this.options.log(`${type} event for ${subject.connectionId}: handler returned ${res.status}`);
          }
        },
        (err: unknown) =>
          this.options.log(`${type} event for ${subject.connectionId} failed: ${(err as Error).message}`),
      );
      this.track(p);
      return p;
    };
    // In order per connection unless a fault says otherwise: `connected` then `disconnected`.
    const chained = (): Promise<void> => {
      const prev = this.perConnection.get(subject.connectionId) ?? Promise.resolve();
      const next = prev.then(send);
      this.perConnection.set(subject.connectionId, next);
      this.track(next);
      void next.then(() => {
        if (this.perConnection.get(subject.connectionId) === next)
          this.perConnection.delete(subject.connectionId);
      });
      return next;
    };
    const released = this.held;
    this.held = [];
    let dispatched: Promise<void> = Promise.resolve();
    switch (fault.action) {
      case "drop":
        this.options.log(`fault injection: dropped ${type} for ${subject.connectionId}`);
        break;
      case "duplicate":
        void chained();
        dispatched = chained();
        break;
      case "delay": {
        const timer = setTimeout(() => {
          this.delayed.delete(timer);
          void send();
        }, fault.ms);
        this.delayed.set(timer, () => void send());
        break;
      }
      case "reorder":
        this.held.push(() => void send());
        break;
      default:
        dispatched = chained();
    }
    // Held events go out once this one has been delivered, so the reordering is certain.
    if (released.length > 0) this.track(dispatched.then(() => released.forEach((r) => r())));
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Sends everything held or delayed, waits for requests in flight, then frees sockets. */
  async close(): Promise<void> {
    for (const [timer, send] of this.delayed) {
      clearTimeout(timer);
      send();
    }
    this.delayed.clear();
    for (const send of this.held) send();
    this.held = [];
    this.closed = true;
    // Pending retries go out now rather than holding shutdown for their delays.
    this.outbound.hurryUp();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    this.outbound.destroy();
  }

  private expand(hub: string, event: string): URL {
    const h = this.handler(hub);
    if (!h) throw new Error(`no event handler for hub ${hub}`);
    return new URL(
      h.urlTemplate
        .replace(/\{hub\}/g, encodeURIComponent(hub))
        .replace(/\{event\}/g, encodeURIComponent(event)),
    );
  }

  /**
   * Resolves once every event sent so far has been answered (or has failed), including those sent
   * meanwhile: the point where the handler has caught up, e.g. after many connections closed at once.
   */
  async settled(): Promise<void> {
    while (this.unanswered.size > 0) await Promise.allSettled([...this.unanswered]);
  }

  private post(
    subject: EventSubject,
    ceType: string,
    eventName: string,
    content: { contentType: string; body: Buffer; id?: string; fault: EventFault },
  ): Promise<HttpResult> {
    const p = this.postNow(subject, ceType, eventName, content);
    this.unanswered.add(p);
    const done = () => this.unanswered.delete(p);
    p.then(done, done);
    return p;
  }

  private async postNow(
    subject: EventSubject,
    ceType: string,
    eventName: string,
    content: { contentType: string; body: Buffer; id?: string; fault: EventFault },
  ): Promise<HttpResult> {
    const url = this.expand(subject.hub, eventName);
    // The official emulator validates the template with `{event}` = "validate": once per handler.
    const validation = this.expand(subject.hub, "validate");
    if (!(await this.outbound.validate(validation))) {
      throw new Error(`the event handler did not allow the origin ${this.origin}`);
    }
    const signature = createHmac("sha256", Buffer.from(this.options.accessKey, "utf8"))
      .update(subject.connectionId, "utf8")
      .digest("hex");
    // Built once: a retry replays the same request, `ce-id` and `ce-time` included.
    const headers: Record<string, string> = {
      "content-type": content.contentType,
      "ce-specversion": "1.0",
      "ce-awpsversion": "1.0",
      "ce-type": ceType,
      "ce-source": `/hubs/${subject.hub}/client/${subject.connectionId}`,
      "ce-id": content.id ?? randomUUID(),
      "ce-time": new Date().toISOString(),
      "ce-signature": `sha256=${signature}`,
      "ce-connectionId": subject.connectionId,
      "ce-hub": subject.hub,
      "ce-eventName": eventName,
      "WebHook-Request-Origin": this.origin,
    };
    if (subject.userId !== undefined) headers["ce-userId"] = subject.userId;
    if (subject.subprotocol !== undefined) headers["ce-subprotocol"] = subject.subprotocol;
    const auth = this.handler(subject.hub)?.auth;
    // Auth type ManagedIdentity: the hub's own identity token for the configured resource.
    if (auth && this.options.identityToken) {
      headers.Authorization = `Bearer ${await this.options.identityToken(auth.resource)}`;
    }
    const fault = content.fault;
    const attemptFault =
      fault.action === "serverError"
        ? (attempt: number): AttemptFault | undefined =>
            attempt < fault.times
              ? { status: fault.status ?? 503, reachesHandler: fault.reachesHandler ?? true }
              : undefined
        : undefined;
    return this.outbound.send(
      url,
      "POST",
      headers,
      content.body,
      this.options.outbound.eventTimeoutMs,
      attemptFault,
    );
  }
}
