/**
 * The service SDK: the control plane's REST API plus the service side of each stream's tunnel, in
 * the Azure SDK shape (docs/sdk.md).
 */
import type { Agent } from "node:http";
import { encodeIdSegment } from "../../../common/ids";
import { relayGroup } from "../../../common/relay";
import { TunnelError, TunnelSession, type TunnelSessionOptions } from "../../tunnel";
import { RelayError, connectRelay, proxyAgentFor } from "../relay";
import { parseConnectionString } from "./connectionString";
import { isLoopbackHost } from "../../../common/loopback";
import {
  type AuthorizationSource,
  type StreamsCredential,
  authorizationSource,
  isTokenCredential,
} from "./credentials";
import { DeviceStream } from "./deviceStream";
import { StreamsError } from "./errors";
import type {
  Endpoints,
  ListStreamsOptions,
  OpenStreamOptions,
  OperationOptions,
  StreamInfo,
} from "./models";

/** 2026-12-01: device and module IDs travel in paths as base64url (docs/decisions.md §2). */
export const API_VERSION = "2026-12-01";

export type TunnelTuning = Omit<TunnelSessionOptions, "role" | "transport" | "acceptChannel" | "maxChannels">;

export interface StreamsClientOptions {
  /** The `sr` of SAS tokens; default: the endpoint's host name. */
  sasResource?: string;
  /** Scopes for a TokenCredential, e.g. `api://<app id>/.default`. */
  tokenScopes?: string | string[];
  /**
   * Permit `ws://` relay URLs. Default: only when the control plane itself is plain `http://`, which
   * is local development (the relay token then travels as openly as the SAS already does).
   */
  allowInsecureRelay?: boolean;
  /** Relay hosts besides the one the control plane names (which is always allowed). */
  relayAllowedHosts?: string[];
  /** Agent for relay WebSockets; default: from HTTPS_PROXY. */
  relayAgent?: Agent;
  tunnel?: TunnelTuning;
  /** Seam for tests. */
  fetch?: typeof fetch;
}

interface CreatedStream extends StreamInfo {
  relay: { url: string; token: string };
  expiresAt: string;
  deviceResponse?: unknown;
}

export class StreamsClient {
  readonly endpoint: string;
  private readonly auth: AuthorizationSource;
  private readonly fetch: typeof fetch;

  constructor(
    endpoint: string,
    credential: StreamsCredential,
    private readonly options: StreamsClientOptions = {},
  ) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new TypeError(`endpoint '${endpoint}' is not a URL`);
    }
    // An Entra token is the user's bearer credential: refused here, before any token is requested.
    if (isTokenCredential(credential) && url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
      throw new TypeError(
        `refusing to send an Entra ID token to ${url.origin} over plain http: use https (http only for loopback)`,
      );
    }
    this.endpoint = url.origin;
    this.auth = authorizationSource(credential, {
      sasResource: options.sasResource ?? url.hostname,
      ...(options.tokenScopes !== undefined ? { scopes: options.tokenScopes } : {}),
    });
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  static fromConnectionString(connectionString: string, options: StreamsClientOptions = {}): StreamsClient {
    const parsed = parseConnectionString(connectionString);
    return new StreamsClient(
      parsed.endpoint,
      { policyName: parsed.policyName, key: parsed.key },
      { ...(parsed.sasResource ? { sasResource: parsed.sasResource } : {}), ...options },
    );
  }

  /**
   * Asks the device (through IoT Hub) to open a stream named `name`, joins the relay and completes
   * the tunnel handshake. Rejects with a StreamsError: the control plane's code (DeviceNotOnline,
   * StreamRejected with `details.reason`, ...) or the relay's / tunnel's.
   */
  async openStream(deviceId: string, name: string, options: OpenStreamOptions = {}): Promise<DeviceStream> {
    const { moduleId, data, handshakeTimeoutInMs, abortSignal } = options;
    const body: Record<string, unknown> = { name };
    if (data !== undefined) body.data = data;
    if (handshakeTimeoutInMs !== undefined) {
      if (
        !Number.isInteger(handshakeTimeoutInMs) ||
        handshakeTimeoutInMs < 5000 ||
        handshakeTimeoutInMs > 60_000
      ) {
        throw new RangeError("handshakeTimeoutInMs must be an integer from 5000 to 60000");
      }
      body.handshakeTimeoutSeconds = Math.ceil(handshakeTimeoutInMs / 1000);
    }
    const created = await this.request<CreatedStream>("POST", streamsPath(deviceId, moduleId), {
      body,
      ...(abortSignal ? { abortSignal } : {}),
    });
    try {
      return await this.join(created, handshakeTimeoutInMs, abortSignal);
    } catch (err) {
      // Leave nothing half-open behind: the control plane ends the device's side too.
      await this.closeStream(created.deviceId, created.streamId).catch(() => undefined);
      throw err;
    }
  }

  private async join(
    created: CreatedStream,
    handshakeTimeoutInMs: number | undefined,
    abortSignal: AbortSignal | undefined,
  ): Promise<DeviceStream> {
    const relayHost = safeHost(created.relay.url);
    let relay;
    try {
      relay = await connectRelay({
        url: created.relay.url,
        token: created.relay.token,
        group: relayGroup(created.streamId),
        policy: {
          allowedHosts: [...(relayHost ? [relayHost] : []), ...(this.options.relayAllowedHosts ?? [])],
          allowInsecure: this.options.allowInsecureRelay ?? new URL(this.endpoint).protocol === "http:",
        },
        ...(handshakeTimeoutInMs !== undefined ? { connectTimeoutInMs: handshakeTimeoutInMs } : {}),
        ...(abortSignal ? { abortSignal } : {}),
        ...agentOption(this.options.relayAgent, created.relay.url),
      });
    } catch (err) {
      if (err instanceof RelayError)
        throw new StreamsError(err.code, err.message, err.statusCode, {}, { cause: err });
      throw err;
    }
    const session = new TunnelSession({
      ...this.options.tunnel,
      ...(handshakeTimeoutInMs !== undefined ? { handshakeTimeoutInMs } : {}),
      role: "service",
      transport: relay,
    });
    relay.reportBytesWith(() => session.stats.bytesSent);
    const stream = new DeviceStream(
      {
        streamId: created.streamId,
        deviceId: created.deviceId,
        ...(created.moduleId !== undefined ? { moduleId: created.moduleId } : {}),
        name: created.name,
        deviceResponse: created.deviceResponse,
        expiresAt: created.expiresAt,
      },
      session,
      relay,
    );
    const onAbort = () => session.close("Normal", "aborted");
    abortSignal?.addEventListener("abort", onAbort);
    session.start();
    try {
      await session.waitReady();
    } catch (err) {
      // The failed session has closed the relay; the caller gets the error once its socket is gone,
      // so a command that fails here ends with nothing of its own still open.
      await relay.whenClosed();
      const code = err instanceof TunnelError ? err.code : "InternalError";
      throw new StreamsError(
        abortSignal?.aborted ? "Aborted" : code,
        `stream ${created.streamId}: ${err instanceof Error ? err.message : String(err)}`,
        undefined,
        {},
        { cause: err },
      );
    } finally {
      abortSignal?.removeEventListener("abort", onAbort);
    }
    return stream;
  }

  async getStream(deviceId: string, streamId: string, options: OperationOptions = {}): Promise<StreamInfo> {
    return this.request<StreamInfo>("GET", streamPath(deviceId, streamId), options);
  }

  /** Closes a stream; both relay connections end at once. */
  async closeStream(deviceId: string, streamId: string, options: OperationOptions = {}): Promise<void> {
    await this.request("DELETE", streamPath(deviceId, streamId), options);
  }

  /** Closes every stream of a device. */
  async closeAllStreams(deviceId: string, options: OperationOptions = {}): Promise<void> {
    await this.request("DELETE", streamsPath(deviceId), options);
  }

  /** A device's streams, newest first, following `nextLink` page by page. */
  async *listStreams(deviceId: string, options: ListStreamsOptions = {}): AsyncIterableIterator<StreamInfo> {
    const query = new URLSearchParams();
    if (options.state) query.set("state", options.state);
    if (options.maxPageSize !== undefined) query.set("maxPageSize", String(options.maxPageSize));
    let next: string | undefined = `${streamsPath(deviceId)}${query.size > 0 ? `?${query.toString()}` : ""}`;
    while (next) {
      const page: { value: StreamInfo[]; nextLink?: string } = await this.request("GET", next, options);
      yield* page.value;
      next = page.nextLink;
    }
  }

  async getEndpoints(options: OperationOptions = {}): Promise<Endpoints> {
    return this.request<Endpoints>("GET", "/api/endpoints", options);
  }

  private async request<T>(
    method: string,
    pathOrUrl: string,
    options: { body?: unknown; abortSignal?: AbortSignal },
  ): Promise<T> {
    const url = new URL(pathOrUrl, this.endpoint);
    // nextLink is absolute; never send our credentials to another origin.
    if (url.origin !== this.endpoint) {
      throw new StreamsError("InvalidResponse", `the control plane linked to another origin (${url.origin})`);
    }
    if (!url.searchParams.has("api-version")) url.searchParams.set("api-version", API_VERSION);
    const headers: Record<string, string> = { authorization: await this.auth(options.abortSignal) };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.abortSignal ? { signal: options.abortSignal } : {}),
      });
    } catch (err) {
      if (options.abortSignal?.aborted)
        throw new StreamsError("Aborted", `${method} aborted`, undefined, {}, { cause: err });
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
      throw new StreamsError(
        "ServiceUnreachable",
        `cannot reach the control plane at ${this.endpoint}: ${cause}`,
        undefined,
        {},
        { cause: err },
      );
    }
    const text = await res.text();
    if (res.status === 204 || (res.ok && text === "")) return undefined as T;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new StreamsError(
        res.ok ? "InvalidResponse" : "HttpError",
        `${method} ${url.pathname} answered ${res.status} with a body that is not JSON`,
        res.status,
      );
    }
    if (res.ok) return parsed as T;
    const error = (parsed as { error?: Record<string, unknown> }).error ?? {};
    const { code, message, ...details } = error;
    throw new StreamsError(
      typeof code === "string" ? code : "HttpError",
      typeof message === "string" ? message : `${method} ${url.pathname} answered ${res.status}`,
      res.status,
      details,
    );
  }
}

/**
 * IDs travel as base64url segments (common/ids.ts), so no ID, not even `..` or `%2F`, can change
 * the path; the control plane judges whether the ID is legal. An empty ID would leave an empty
 * segment, which routes elsewhere.
 */
function streamsPath(deviceId: string, moduleId?: string): string {
  if (deviceId.length === 0) throw new TypeError("deviceId must not be empty");
  if (moduleId !== undefined && moduleId.length === 0) throw new TypeError("moduleId must not be empty");
  const device = `/api/devices/${encodeIdSegment(deviceId)}`;
  return moduleId === undefined
    ? `${device}/streams`
    : `${device}/modules/${encodeIdSegment(moduleId)}/streams`;
}

/** Stream IDs are the control plane's own alphabet and go into the path as they are, so nothing else may. */
function streamPath(deviceId: string, streamId: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(streamId)) {
    throw new TypeError("streamId must be a stream ID: letters, digits, '_' and '-'");
  }
  return `${streamsPath(deviceId)}/${streamId}`;
}

function safeHost(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

function agentOption(agent: Agent | undefined, relayUrl: string): { agent?: Agent } {
  if (agent) return { agent };
  try {
    const fromEnv = proxyAgentFor(new URL(relayUrl));
    return fromEnv ? { agent: fromEnv } : {};
  } catch {
    return {};
  }
}
