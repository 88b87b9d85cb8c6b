/** StreamsClient's REST layer through its fetch seam: paths, auth, error mapping, paging rules. */
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { StreamsClient, StreamsError } from "../../client/sdk/service";
import { rejection } from "../emulators/iothub/helpers";

const KEY = Buffer.alloc(32, 1).toString("base64");

interface Call {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

function fakeFetch(respond: (call: Call) => { status: number; body?: string }) {
  const calls: Call[] = [];
  const fetch = (async (input: URL | string, init: RequestInit = {}) => {
    const call: Call = {
      url: new URL(input.toString()),
      method: init.method ?? "GET",
      headers: init.headers as Record<string, string>,
      ...(typeof init.body === "string" ? { body: init.body } : {}),
    };
    calls.push(call);
    const { status, body } = respond(call);
    return new Response(status === 204 ? null : (body ?? ""), { status });
  }) as typeof globalThis.fetch;
  return { calls, fetch };
}

const client = (fetch: typeof globalThis.fetch) =>
  StreamsClient.fromConnectionString(
    `Endpoint=https://cp.example.com;SharedAccessKeyName=service;SharedAccessKey=${KEY}`,
    { fetch },
  );

describe("StreamsClient REST layer", () => {
  it("carries case-sensitive ids as base64url, adds api-version, signs with a cached SAS for the host", async () => {
    const { calls, fetch } = fakeFetch(() => ({ status: 200, body: JSON.stringify({ streamId: "s" }) }));
    const c = client(fetch);
    await c.getStream("Dev#A?1", "s_1-x");
    await c.getStream("dev#a?1", "s");
    expect(calls[0]!.url.pathname).toBe("/api/devices/RGV2I0E_MQ/streams/s_1-x");
    expect(calls[1]!.url.pathname).toBe("/api/devices/ZGV2I2E_MQ/streams/s");
    expect(calls[0]!.url.searchParams.get("api-version")).toBe("2026-12-01");
    expect(calls[0]!.headers.authorization).toMatch(
      /^SharedAccessSignature sr=cp\.example\.com&sig=.+&skn=service$/,
    );
    expect(calls[1]!.headers.authorization).toBe(calls[0]!.headers.authorization);
  });

  it.each([
    [404, JSON.stringify({ error: { code: "StreamNotFound", message: "gone" } }), "StreamNotFound", "gone"],
    [
      409,
      JSON.stringify({ error: { code: "StreamRejected", message: "no", reason: "busy" } }),
      "StreamRejected",
      "no",
    ],
    [502, "<html>bad gateway</html>", "HttpError", /answered 502 with a body that is not JSON/],
    [500, JSON.stringify({ nothing: true }), "HttpError", /answered 500/],
  ])("maps HTTP %d to a StreamsError", async (status, body, code, message) => {
    const { fetch } = fakeFetch(() => ({ status, body }));
    const err = await rejection(client(fetch).getStream("D", "s"));
    expect(err).toBeInstanceOf(StreamsError);
    expect(err).toMatchObject({ name: "StreamsError", code, statusCode: status });
    expect(err.message).toMatch(message);
    if (code === "StreamRejected") expect(err.details).toEqual({ reason: "busy" });
  });

  it("reports an unreachable control plane without leaking the token", async () => {
    const fetch = (async () => {
      throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 10.0.0.1:443") });
    }) as typeof globalThis.fetch;
    const err = await rejection(client(fetch).getEndpoints());
    expect(err).toMatchObject({ code: "ServiceUnreachable" });
    expect(err.message).toMatch(
      /cannot reach the control plane at https:\/\/cp\.example\.com: connect ECONNREFUSED/,
    );
    expect(err.message).not.toMatch(/SharedAccessSignature/);
  });

  it("follows nextLink page by page, but never to another origin", async () => {
    const pages: Record<string, string> = {
      first: JSON.stringify({
        value: [{ streamId: "a" }],
        nextLink: "https://cp.example.com/api/devices/RA/streams?continuationToken=2&api-version=2026-12-01",
      }),
      second: JSON.stringify({ value: [{ streamId: "b" }], nextLink: "https://evil.example.com/steal" }),
    };
    const { calls, fetch } = fakeFetch((call) => ({
      status: 200,
      body: call.url.searchParams.get("continuationToken") === "2" ? pages.second : pages.first,
    }));
    const seen: string[] = [];
    const err = await rejection(
      (async () => {
        for await (const s of client(fetch).listStreams("D", { maxPageSize: 1 })) seen.push(s.streamId);
      })(),
    );
    expect(seen).toEqual(["a", "b"]);
    expect(err).toMatchObject({ code: "InvalidResponse", message: expect.stringMatching(/another origin/) });
    expect(calls.map((c) => c.url.host)).toEqual(["cp.example.com", "cp.example.com"]);
    expect(calls[0]!.url.searchParams.get("maxPageSize")).toBe("1");
  });

  it("uses a TokenCredential with the given scopes, and needs them", async () => {
    const scopes: Array<string | string[]> = [];
    const credential: TokenCredential = {
      getToken: async (s): Promise<AccessToken> => {
        scopes.push(s);
        return { token: "entra-token", expiresOnTimestamp: Date.now() + 3600_000 };
      },
    };
    const { calls, fetch } = fakeFetch(() => ({ status: 204 }));
    const c = new StreamsClient("https://cp.example.com", credential, {
      tokenScopes: "api://cp/.default",
      fetch,
    });
    await c.closeStream("D", "s");
    await c.closeAllStreams("D");
    expect(calls[0]).toMatchObject({ method: "DELETE", headers: { authorization: "Bearer entra-token" } });
    expect(calls.map((x) => `${x.method} ${x.url.pathname}`)).toEqual([
      "DELETE /api/devices/RA/streams/s",
      "DELETE /api/devices/RA/streams",
    ]);
    expect(scopes).toEqual(["api://cp/.default", "api://cp/.default"]);
    expect(() => new StreamsClient("https://cp.example.com", credential)).toThrow(/scope/);
  });

  it("never sends an Entra token to a plain-http endpoint that is not loopback: refused before any token", () => {
    let asked = 0;
    const credential: TokenCredential = {
      getToken: async (): Promise<AccessToken> => {
        asked++;
        return { token: "entra-token", expiresOnTimestamp: Date.now() + 3600_000 };
      },
    };
    const options = { tokenScopes: "api://cp/.default" };
    for (const endpoint of ["http://cp.example.com", "http://10.1.2.3:7071", "http://127.0.0.1.nip.io"]) {
      expect(() => new StreamsClient(endpoint, credential, options)).toThrow(
        /refusing to send an Entra ID token to .* over plain http/,
      );
    }
    expect(asked).toBe(0);
    for (const endpoint of [
      "http://127.0.0.1:7071",
      "http://localhost:7071",
      "http://[::1]:7071",
      "https://cp.example",
    ]) {
      expect(new StreamsClient(endpoint, credential, options).endpoint).toBe(new URL(endpoint).origin);
    }
    // A SAS is the policy's own: the local stack runs it over plain http.
    expect(new StreamsClient("http://cp.example.com", { policyName: "p", key: KEY }).endpoint).toBe(
      "http://cp.example.com",
    );
  });

  it("validates arguments before any request", async () => {
    const { calls, fetch } = fakeFetch(() => ({ status: 500 }));
    const c = client(fetch);
    await expect(c.openStream("D", "ssh", { handshakeTimeoutInMs: 100 })).rejects.toThrow(RangeError);
    await expect(c.openStream("", "ssh")).rejects.toThrow(/deviceId/);
    await expect(c.openStream("D", "ssh", { moduleId: "" })).rejects.toThrow(/moduleId/);
    await expect(c.getStream("D", "..")).rejects.toThrow(/streamId must be a stream ID/);
    await expect(c.closeStream("D", "s/../..")).rejects.toThrow(/streamId must be a stream ID/);
    expect(() => new StreamsClient("not a url", { policyName: "p", key: KEY })).toThrow(/not a URL/);
    expect(calls).toEqual([]);
  });
});
