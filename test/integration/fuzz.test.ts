/**
 * Malformed bodies, headers and CloudEvents, a few hundred of them from a seeded generator:
 * every answer is a 4xx with an Azure-style error body (or a success for an input that happens to
 * be valid), never a 5xx, and the control plane keeps serving.
 */
import { encodeIdSegment } from "../../common/ids";
import { signConnectionId } from "../../shared/auth";
import { WPS_KEY, sas, useControlPlane } from "../helpers/controlPlane";

const plane = useControlPlane();
const V = "api-version=2026-12-01";

/** mulberry32: small, seeded, good enough to pick cases reproducibly. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = rng(20261122);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (max: number) => Math.floor(random() * max);

function junkString(): string {
  const alphabets = ["abc", "\u0000\u0001\u001f", '{}[]",:', "💥ü€", "%23%3F%", "\\\\//..", " \t\n"];
  let out = "";
  const length = pick([0, 1, 5, 40, 300, 5000]);
  for (let i = 0; i < length; i++) out += pick([...pick(alphabets)]);
  return out;
}

function junkValue(depth = 0): unknown {
  switch (int(depth > 2 ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return random() * 1e12 * (random() < 0.5 ? -1 : 1);
    case 2:
      return junkString();
    case 3:
      return random() < 0.5;
    case 4:
      return pick([Number.MAX_SAFE_INTEGER, -1, 0, 4, 5, 60, 61, 1e308]);
    case 5:
      return Array.from({ length: int(4) }, () => junkValue(depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < int(4); i++)
        o[pick(["name", "data", "handshakeTimeoutSeconds", "__proto__", junkString()])] = junkValue(
          depth + 1,
        );
      return o;
    }
  }
}

function junkBody(): string {
  const valid = JSON.stringify({ name: "ssh", data: junkValue() });
  switch (int(5)) {
    case 0:
      return JSON.stringify(junkValue());
    case 1:
      return valid.slice(0, int(valid.length));
    case 2:
      return junkString();
    case 3:
      return Buffer.from(Array.from({ length: int(200) }, () => int(256))).toString("latin1");
    default:
      return JSON.stringify({ name: junkValue(), handshakeTimeoutSeconds: junkValue(), data: junkValue() });
  }
}

/** Only what HTTP can carry: header values are Latin-1 without control characters. */
function httpSafe(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([k, v]) => [k, v.replace(/[^\t\x20-\x7e\x80-\xff]/g, "")]),
  );
}

function expectClientError(res: { status: number; text: string; headers: Headers }, what: string) {
  if (res.status >= 500) throw new Error(`${what} gave ${res.status}: ${res.text.slice(0, 300)}`);
  // No function takes a path that decoding turned into another route: the host's empty 404.
  if (res.status === 404 && res.text === "") return;
  if (res.status >= 400) {
    const body = JSON.parse(res.text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof body.error?.code).toBe("string");
    expect(typeof body.error?.message).toBe("string");
    expect(res.headers.get("x-ms-error-code")).toBe(body.error?.code);
  }
}

describe("fuzzing the control plane", () => {
  beforeAll(() => {
    plane().signaller.answer = async () => ({ status: pick([200, 400, 500]), payload: junkValue() });
  });

  it("answers malformed stream requests with 4xx", async () => {
    for (let i = 0; i < 200; i++) {
      const device = pick([
        encodeIdSegment("dev1"),
        encodeIdSegment(junkString()) || "x",
        "Li4=",
        "Pz8+",
        "Li5",
        "dev1",
        "Dev%23x",
        "a%20b",
        encodeURIComponent(junkString()) || "x",
        "%E0%A4%A",
      ]);
      const headers: Record<string, string> = {
        "content-type": pick([
          "application/json",
          "text/plain",
          "application/json; charset=utf-8",
          junkString(),
        ]),
      };
      if (random() < 0.2) headers["repeatability-request-id"] = junkString();
      const auth = pick([
        sas(),
        sas(),
        null,
        junkString(),
        `SharedAccessSignature ${junkString()}`,
        `Bearer ${junkString()}`,
      ]);
      const query = pick([
        V,
        "",
        `api-version=${encodeURIComponent(junkString())}`,
        `${V}&state=${encodeURIComponent(junkString())}`,
      ]);
      const method = pick(["POST", "POST", "GET", "DELETE"]);
      const path = `/api/devices/${device}/streams?${query}`;
      const res = await plane().call(method, path, {
        auth: auth === null ? null : (httpSafe({ a: auth }).a ?? ""),
        headers: httpSafe(headers),
        ...(method === "POST" ? { body: junkBody() } : {}),
      });
      expectClientError(res, `${method} ${path}`);
    }
  });

  it("answers malformed CloudEvents with 4xx", async () => {
    for (let i = 0; i < 200; i++) {
      const connectionId = pick(["c1", junkString(), ""]);
      const headers: Record<string, string> = {
        "ce-type": pick([
          "azure.webpubsub.sys.connect",
          "azure.webpubsub.sys.connected",
          "azure.webpubsub.sys.disconnected",
          "azure.webpubsub.user.report",
          "azure.webpubsub.user.other",
          junkString(),
        ]),
        "ce-userId": pick(["AAAAAAAAAAAAAAAAAAAAAA.device", "x.service", junkString()]),
        "ce-hub": pick(["streams", "STREAMS", junkString()]),
        "content-type": "application/json",
      };
      if (connectionId !== "") headers["ce-connectionId"] = connectionId;
      headers["ce-signature"] = pick([
        signConnectionId(WPS_KEY, connectionId),
        `sha256=${junkString()}`,
        junkString(),
      ]);
      const res = await plane().call(pick(["POST", "POST", "OPTIONS"]), "/api/relay/events", {
        auth: null,
        headers: httpSafe(random() < 0.5 ? headers : { ...headers, "webhook-request-origin": junkString() }),
        body: junkBody(),
      });
      expectClientError(res, `event ${headers["ce-type"]}`);
    }
  });

  it("still serves a valid request afterwards", async () => {
    plane().signaller.answer = async () => ({ status: 200, payload: { accepted: true } });
    const res = await plane().call("POST", `/api/devices/${encodeIdSegment("after-fuzz")}/streams?${V}`, {
      body: { name: "ssh" },
    });
    expect(res.status).toBe(201);
  });
});
