/**
 * How the service talks to event handlers, after the official emulator, which says it mirrors the
 * runtime (Azure/azure-webpubsub, tools/emulator, commit 2a3bb55):
 * - CustomerOutboundConfiguration.cs: a network error, 408 or any 5xx is retried after 1, 3 and
 *   5 s (four attempts); the same request is replayed, so `ce-id` and `ce-time` do not change; a
 *   timeout is not retried. HttpClient's default Timeout (100 s) bounds the whole call, retries
 *   included.
 * - AbuseProtector.cs: only the first validation of a handler blocks events; later ones refresh
 *   in the background and events use the last result meanwhile. A success is refreshed after
 *   60 s; a failure after 1 s, doubling up to 60 s. OPTIONS falls back to GET on a 404; any 2xx
 *   with `WebHook-Allowed-Origin` `*` or our host (one header value, case-insensitive) passes; a
 *   validation times out after 10 s.
 */
import http from "node:http";
import https from "node:https";

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** One entry per header line, as .NET reads `WebHook-Allowed-Origin`. */
  distinct: NodeJS.Dict<string[]>;
  body: Buffer;
}

/** What a retried event was last answered with, or why no answer came. */
export class OutboundError extends Error {
  override readonly name = "OutboundError";
}

export interface OutboundOptions {
  /** Waits before each retry; Azure: 1, 3, 5 s. */
  retryDelaysMs: readonly number[];
  /** Bound of one event, retries included; Azure: 100 s. */
  eventTimeoutMs: number;
  validation: { minIntervalMs: number; maxIntervalMs: number; timeoutMs: number };
  now?: () => number;
}

export const AZURE_OUTBOUND: OutboundOptions = {
  retryDelaysMs: [1000, 3000, 5000],
  eventTimeoutMs: 100_000,
  validation: { minIntervalMs: 1000, maxIntervalMs: 60_000, timeoutMs: 10_000 },
};

/** Per attempt: the status to answer instead of the handler's, and whether to call it at all. */
export interface AttemptFault {
  status: number;
  reachesHandler: boolean;
}

interface ValidationRecord {
  initialized: boolean;
  success: boolean;
  intervalMs: number;
  nextAt: number;
  refresh?: Promise<boolean>;
}

function retryable(status: number): boolean {
  return status === 408 || status >= 500;
}

export class Outbound {
  private readonly agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true }),
  };
  private readonly records = new Map<string, ValidationRecord>();
  /** Wakers of retry waits: at shutdown the retries go out at once instead of holding close(). */
  private readonly sleepers = new Set<() => void>();
  private hurry = false;
  private readonly now: () => number;

  constructor(
    private readonly options: OutboundOptions,
    private readonly origin: string,
    private readonly log: (line: string) => void,
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Sends with the retry policy. Resolves with the last answer (a 5xx once retries are used up);
   * rejects on a network error after the last attempt, or on the timeout.
   */
  async send(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    timeoutMs: number,
    faultFor: (attempt: number) => AttemptFault | undefined = () => undefined,
  ): Promise<HttpResult> {
    const signal = AbortSignal.timeout(timeoutMs);
    const delays = this.options.retryDelaysMs;
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= delays.length;
      const fault = faultFor(attempt);
      let outcome: HttpResult | Error;
      try {
        const answer =
          fault && !fault.reachesHandler ? undefined : await this.request(url, method, headers, body, signal);
        outcome = fault
          ? { status: fault.status, headers: {}, distinct: {}, body: Buffer.alloc(0) }
          : answer!;
        if (fault) this.log(`fault injection: answered ${fault.status} for ${method} ${url.pathname}`);
      } catch (err) {
        if (signal.aborted) throw new OutboundError(`no answer within ${timeoutMs} ms`);
        outcome = err as Error;
      }
      if (!(outcome instanceof Error) && (!retryable(outcome.status) || last)) return outcome;
      if (outcome instanceof Error && last) throw new OutboundError(outcome.message, { cause: outcome });
      const why = outcome instanceof Error ? outcome.message : `status ${outcome.status}`;
      this.log(`${method} ${url.pathname} attempt ${attempt + 1} failed (${why}); retrying`);
      await this.sleep(delays[attempt]!);
    }
  }

  /** Whether events may go to this handler; blocks only until the first validation is done. */
  validate(url: URL): Promise<boolean> {
    const key = url.href;
    let record = this.records.get(key);
    if (!record) {
      record = {
        initialized: false,
        success: true,
        intervalMs: this.options.validation.minIntervalMs,
        nextAt: 0,
      };
      this.records.set(key, record);
    }
    if (this.now() >= record.nextAt && record.refresh === undefined) {
      const r = record;
      r.refresh = this.refresh(r, url).finally(() => (r.refresh = undefined));
    }
    return record.initialized ? Promise.resolve(record.success) : record.refresh!;
  }

  private async refresh(record: ValidationRecord, url: URL): Promise<boolean> {
    let success = false;
    try {
      let answer = await this.validationRequest(url, "OPTIONS");
      if (answer.status === 404) answer = await this.validationRequest(url, "GET");
      const origins = answer.origins.map((o) => o.trim().toLowerCase());
      success =
        answer.status >= 200 &&
        answer.status < 300 &&
        (origins.includes("*") || origins.includes(this.origin.toLowerCase()));
      if (!success) {
        this.log(`abuse-protection validation of ${url.origin}${url.pathname} failed (${answer.status})`);
      }
    } catch (err) {
      this.log(
        `abuse-protection validation of ${url.origin}${url.pathname} failed: ${(err as Error).message}`,
      );
    }
    const { minIntervalMs, maxIntervalMs } = this.options.validation;
    record.intervalMs = success
      ? maxIntervalMs
      : record.success
        ? minIntervalMs
        : Math.min(record.intervalMs * 2, maxIntervalMs);
    record.success = success;
    record.initialized = true;
    record.nextAt = this.now() + record.intervalMs;
    return success;
  }

  private async validationRequest(url: URL, method: string): Promise<{ status: number; origins: string[] }> {
    const res = await this.send(
      url,
      method,
      { "WebHook-Request-Origin": this.origin, "ce-awpsversion": "1.0" },
      undefined,
      this.options.validation.timeoutMs,
    );
    return { status: res.status, origins: res.distinct["webhook-allowed-origin"] ?? [] };
  }

  private sleep(ms: number): Promise<void> {
    if (this.hurry) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Retries waiting now, and any later ones, go out without their delay. */
  hurryUp(): void {
    this.hurry = true;
    for (const wake of [...this.sleepers]) wake();
  }

  destroy(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private request(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal: AbortSignal,
  ): Promise<HttpResult> {
    const secure = url.protocol === "https:";
    const lib = secure ? https : http;
    return new Promise<HttpResult>((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          headers: body ? { ...headers, "content-length": String(body.length) } : headers,
          agent: secure ? this.agents.https : this.agents.http,
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              distinct: res.headersDistinct,
              body: Buffer.concat(chunks),
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }
}
