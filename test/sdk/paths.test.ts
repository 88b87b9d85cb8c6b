/**
 * Issue 12 row 11: no ID a caller passes can change the request path. A real HTTP server records
 * the request line exactly as it arrived, after fetch and `new URL` had their chance to fold
 * `..`, `%2e%2e` or `%2F`.
 */
import { once } from "node:events";
import { type AddressInfo } from "node:net";
import { createServer } from "node:http";
import { decodeIdSegment, ID_SPECIAL_CHARACTERS } from "../../common/ids";
import { StreamsClient } from "../../client/sdk/service";
import { rejection } from "../emulators/iothub/helpers";

const KEY = Buffer.alloc(32, 7).toString("base64");
const HOSTILE = [".", "..", "../..", "%2e%2e", "%2E%2E%2F", "%2F", "%", "#", "?", ";", "a/b", "./x", " "];
const LEGAL = [...ID_SPECIAL_CHARACTERS].map((c) => `x${c}y`);

const requests: string[] = [];
const server = createServer((req, res) => {
  requests.push(`${req.method} ${req.url}`);
  res.writeHead(404, { "content-type": "application/json", "x-ms-error-code": "DeviceNotFound" });
  res.end(JSON.stringify({ error: { code: "DeviceNotFound", message: "recorded" } }));
});
let client: StreamsClient;

beforeAll(async () => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  client = StreamsClient.fromConnectionString(
    `Endpoint=http://127.0.0.1:${port};SharedAccessKeyName=service;SharedAccessKey=${KEY}`,
  );
});
afterAll(() => server.close());
beforeEach(() => requests.splice(0));

/** The IDs the recorded request line carries, or why it is not one of the API's shapes. */
function idsOf(line: string): { method: string; deviceId: string; moduleId?: string; rest: string } {
  const m =
    /^(\w+) \/api\/devices\/([A-Za-z0-9_-]+)(?:\/modules\/([A-Za-z0-9_-]+))?\/streams(\/[A-Za-z0-9_-]+)?\?api-version=2026-12-01(?:&|$)/.exec(
      line,
    );
  if (!m) throw new Error(`not an API path: ${line}`);
  const decode = (segment: string) => Buffer.from(segment, "base64url").toString("utf8");
  return {
    method: m[1]!,
    deviceId: decode(m[2]!),
    ...(m[3] !== undefined ? { moduleId: decode(m[3]) } : {}),
    rest: m[4] ?? "",
  };
}

describe("SDK request paths", () => {
  it.each([...HOSTILE, ...LEGAL])(
    "openStream(dev, 'echo', {moduleId: %p}) posts to that module of that device",
    async (moduleId) => {
      await rejection(client.openStream("dev", "echo", { moduleId }));
      expect(requests).toHaveLength(1);
      expect(idsOf(requests[0]!)).toEqual({ method: "POST", deviceId: "dev", moduleId, rest: "" });
    },
  );

  it.each([...HOSTILE, ...LEGAL])(
    "every call for the device %p stays on that device's path",
    async (deviceId) => {
      await rejection(client.openStream(deviceId, "echo"));
      await rejection(client.closeAllStreams(deviceId));
      await rejection(client.getStream(deviceId, "AAAAAAAAAAAAAAAAAAAAAA"));
      await rejection(client.closeStream(deviceId, "AAAAAAAAAAAAAAAAAAAAAA"));
      await rejection(client.listStreams(deviceId).next());
      expect(requests.map(idsOf)).toEqual([
        { method: "POST", deviceId, rest: "" },
        { method: "DELETE", deviceId, rest: "" },
        { method: "GET", deviceId, rest: "/AAAAAAAAAAAAAAAAAAAAAA" },
        { method: "DELETE", deviceId, rest: "/AAAAAAAAAAAAAAAAAAAAAA" },
        { method: "GET", deviceId, rest: "" },
      ]);
    },
  );

  it("closeAllStreams('..') sends DELETE for the device '..', never DELETE /api/streams", async () => {
    await rejection(client.closeAllStreams(".."));
    expect(requests).toEqual(["DELETE /api/devices/Li4/streams?api-version=2026-12-01"]);
    expect(decodeIdSegment("Li4")).toEqual({ ok: true, id: ".." });
  });

  it("refuses an empty ID before any request: it would leave an empty segment", async () => {
    await expect(client.closeAllStreams("")).rejects.toThrow(/deviceId must not be empty/);
    await expect(client.openStream("dev", "echo", { moduleId: "" })).rejects.toThrow(
      /moduleId must not be empty/,
    );
    expect(requests).toEqual([]);
  });
});
