/**
 * The CLI's control-plane requests over node:http(s) instead of Node's fetch. Why: a fresh process
 * pays for undici on its first fetch (about 35 ms of CPU here, a seventh of `connect`'s 250 ms
 * budget, docs/performance.md), while node:http is already in Node's start-up snapshot. It does
 * only what StreamsClient asks of fetch: one request with a string body, the status and the body as
 * text. It follows no redirect (fetch would, resending the authorization to wherever it points) and
 * reads at most MAX_RESPONSE_BYTES.
 */
import { type IncomingMessage, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** Far above any control-plane answer (a page of streams); a larger one is not the control plane. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** The part of a fetch Response that StreamsClient reads. */
export interface TextResponse {
  ok: boolean;
  status: number;
  text: () => Promise<string>;
}

export function httpFetch(input: string | URL, init: RequestInit = {}): Promise<TextResponse> {
  const url = new URL(input);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Promise.reject(new TypeError(`fetch: unsupported scheme ${url.protocol}`));
  }
  if (init.body !== undefined && init.body !== null && typeof init.body !== "string") {
    return Promise.reject(new TypeError("fetch: only a string body is supported"));
  }
  // A Headers instance or a list would spread to nothing and drop the authorization without a word.
  const given: unknown = init.headers ?? {};
  if (Object.getPrototypeOf(given) !== Object.prototype) {
    return Promise.reject(new TypeError("fetch: headers must be a plain object"));
  }
  const body = init.body ?? undefined;
  const headers = { ...(given as Record<string, string>) };
  if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const signal = init.signal ?? undefined;
    const reason = () => (signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    if (signal?.aborted) {
      reject(reason());
      return;
    }
    const req = send(url, { method: init.method ?? "GET", headers });
    const onAbort = () => req.destroy(reason());
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    // As fetch does: a transport failure is a TypeError whose cause says what happened.
    req.once("error", (err) => {
      done();
      reject(new TypeError("fetch failed", { cause: err }));
    });
    req.once("response", (res) => {
      const text = readText(res);
      text.then(done, done);
      const status = res.statusCode ?? 0;
      resolve({ ok: status >= 200 && status < 300, status, text: () => text });
    });
    req.end(body);
  });
}

function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy();
        reject(new TypeError(`fetch: the response is larger than ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.once("error", (err) => reject(new TypeError("fetch failed", { cause: err })));
    res.once("close", () => {
      if (!res.complete) reject(new TypeError("fetch failed: the response was cut short"));
    });
  });
}
