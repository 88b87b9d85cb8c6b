import type { BearerCheck } from "../entra/rbac";
import type { FaultConfig } from "./faults";
import { AZURE_OUTBOUND, type OutboundOptions } from "./outbound";

/** The official emulator's well-known key, so its documented connection string works unchanged. */
export const WELL_KNOWN_ACCESS_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

export type SystemEventName = "connect" | "connected" | "disconnected";

export interface EventHandlerSetting {
  /** URL with optional `{hub}` and `{event}` placeholders. */
  urlTemplate: string;
  /** System events sent to this handler; default all three. */
  systemEvents?: readonly SystemEventName[];
  /** `*` (default), or comma-separated user event names. */
  userEventPattern?: string;
  /** `{ type: "ManagedIdentity", resource }`: send `Authorization: Bearer` for that audience. */
  auth?: { type: "ManagedIdentity"; resource: string };
}

export interface WebPubSubEmulatorOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  accessKey?: string;
  /** Per hub: a URL template (all events) or a full setting. Hub names are case-insensitive. */
  eventHandlers?: Record<string, string | EventHandlerSetting>;
  /** Fault injection: drop/duplicate/delay/reorder `connected`/`disconnected`; 5xx for any event. */
  faults?: FaultConfig;
  /** Per-connection outbound queue; beyond either limit the receiver is closed as `SlowClient`. */
  outboundQueue?: { maxMessages?: number; maxBytes?: number };
  /** Unacknowledged-message buffer of reliable clients (service: 1000 messages or 16 MB). */
  reliableBuffer?: { maxMessages?: number; maxBytes?: number };
  /** How long a dropped reliable connection may be recovered; default 30 s. */
  recoveryWindowMs?: number;
  /** WebSocket ping interval; default 20 s (the hub setting's default). */
  keepAliveIntervalMs?: number;
  /** Bound of one upstream event, its retries included; default 100 s, as the service. */
  eventTimeoutMs?: number;
  /** Waits before each retry of an event; default 1, 3 and 5 s, as the service. For unit tests. */
  retryDelaysMs?: readonly number[];
  /** Re-validation of handlers; default 1 s doubling to 60 s, 10 s timeout. For unit tests. */
  validation?: Partial<OutboundOptions["validation"]>;
  /** Accepted token clock skew; default 300 s as in the official emulator. */
  clockSkewSeconds?: number;
  /** Log sink; never receives tokens or keys. Default: no logging. */
  logger?: (line: string) => void;
  /** Serve HTTPS/WSS with this certificate (Entra bearer tokens need TLS); default plain HTTP. */
  tls?: { key: string; cert: string };
  /**
   * Accept Entra ID bearer tokens on the REST API (keyless, as in Azure), checked for signature,
   * audience `https://webpubsub.azure.com` and a role assignment; access-key tokens still work.
   */
  entra?: BearerCheck;
  /**
   * Event-handler auth type ManagedIdentity: mints the token the hub sends upstream, for the
   * handler setting's `auth.resource` (Azure uses the Web PubSub resource's identity).
   */
  identityToken?: (resource: string) => Promise<string>;
  /** Called for each REST request signed with the access key (tests prove the keyless path with it). */
  onKeySignedRequest?: () => void;
}

export type ResolvedEventHandler = Required<Omit<EventHandlerSetting, "auth">> &
  Pick<EventHandlerSetting, "auth">;

export interface ResolvedOptions {
  port: number;
  host: string;
  accessKey: string;
  eventHandlers: Map<string, ResolvedEventHandler>;
  faults: FaultConfig | undefined;
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  reliableMaxMessages: number;
  reliableMaxBytes: number;
  recoveryWindowMs: number;
  keepAliveIntervalMs: number;
  outbound: OutboundOptions;
  clockSkewSeconds: number;
  log: (line: string) => void;
  tls: { key: string; cert: string } | undefined;
  entra: BearerCheck | undefined;
  identityToken: ((resource: string) => Promise<string>) | undefined;
  onKeySignedRequest: () => void;
}

export const MAX_FRAME_BYTES = 1024 * 1024;
const ALL_SYSTEM_EVENTS: readonly SystemEventName[] = ["connect", "connected", "disconnected"];
const HUB_NAME = /^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$/;

export function isValidHubName(hub: string): boolean {
  return HUB_NAME.test(hub);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  return value;
}

export function resolveOptions(options: WebPubSubEmulatorOptions): ResolvedOptions {
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError("port must be 0..65535");
  const accessKey = options.accessKey ?? WELL_KNOWN_ACCESS_KEY;
  if (accessKey.length === 0) throw new RangeError("accessKey must not be empty");
  const eventHandlers = new Map<string, ResolvedEventHandler>();
  for (const [hub, setting] of Object.entries(options.eventHandlers ?? {})) {
    if (!isValidHubName(hub)) throw new RangeError(`invalid hub name in eventHandlers: ${hub}`);
    const s = typeof setting === "string" ? { urlTemplate: setting } : setting;
    try {
      new URL(s.urlTemplate.replace(/\{(hub|event)\}/g, "x"));
    } catch {
      throw new RangeError(`event handler for hub ${hub} is not a URL template: ${s.urlTemplate}`);
    }
    if (s.auth && !options.identityToken) {
      throw new RangeError(
        `event handler for hub ${hub} uses ManagedIdentity auth, but no identityToken is given`,
      );
    }
    eventHandlers.set(hub.toLowerCase(), {
      urlTemplate: s.urlTemplate,
      systemEvents: s.systemEvents ?? ALL_SYSTEM_EVENTS,
      userEventPattern: s.userEventPattern ?? "*",
      ...(s.auth ? { auth: s.auth } : {}),
    });
  }
  return {
    port,
    host: options.host ?? "127.0.0.1",
    accessKey,
    eventHandlers,
    faults: options.faults,
    maxQueuedMessages: positive("outboundQueue.maxMessages", options.outboundQueue?.maxMessages, 1000),
    maxQueuedBytes: positive("outboundQueue.maxBytes", options.outboundQueue?.maxBytes, 4 * 1024 * 1024),
    reliableMaxMessages: positive("reliableBuffer.maxMessages", options.reliableBuffer?.maxMessages, 1000),
    reliableMaxBytes: positive("reliableBuffer.maxBytes", options.reliableBuffer?.maxBytes, 16 * 1024 * 1024),
    recoveryWindowMs: positive("recoveryWindowMs", options.recoveryWindowMs, 30_000),
    keepAliveIntervalMs: positive("keepAliveIntervalMs", options.keepAliveIntervalMs, 20_000),
    outbound: {
      retryDelaysMs: (options.retryDelaysMs ?? AZURE_OUTBOUND.retryDelaysMs).map((ms) =>
        positive("retryDelaysMs", ms, ms),
      ),
      eventTimeoutMs: positive("eventTimeoutMs", options.eventTimeoutMs, AZURE_OUTBOUND.eventTimeoutMs),
      validation: {
        minIntervalMs: positive(
          "validation.minIntervalMs",
          options.validation?.minIntervalMs,
          AZURE_OUTBOUND.validation.minIntervalMs,
        ),
        maxIntervalMs: positive(
          "validation.maxIntervalMs",
          options.validation?.maxIntervalMs,
          AZURE_OUTBOUND.validation.maxIntervalMs,
        ),
        timeoutMs: positive(
          "validation.timeoutMs",
          options.validation?.timeoutMs,
          AZURE_OUTBOUND.validation.timeoutMs,
        ),
      },
    },
    clockSkewSeconds: options.clockSkewSeconds ?? 300,
    log: options.logger ?? (() => undefined),
    tls: options.tls,
    entra: options.entra,
    onKeySignedRequest: options.onKeySignedRequest ?? (() => undefined),
    identityToken: options.identityToken,
  };
}
