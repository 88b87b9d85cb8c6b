/**
 * Issue 12, rows 3 and 8, over real HTTP on the local Functions host: request bodies are read as
 * streams with each route's own limit (shared/http/body.ts), so huge anonymous uploads cost
 * neither memory nor time; and JSON is bounded in depth and width before validation
 * (shared/http/json.ts), so deep `data` is a 400 naming the field, never a stack overflow.
 */
import { request as httpRequest } from "node:http";
import { encodeIdSegment } from "../../common/ids";
import { startControlPlaneHost } from "../../devstack/controlPlaneHost";
import type { LocalHost } from "../../devstack/host";
import { MAX_EVENT_BYTES } from "../../shared/api/relayEventsApi";
import { API_VERSIONS } from "../../shared/api/schemas";
import { createServices } from "../../shared/app";
import { signConnectionId } from "../../shared/auth";
import { loadConfig } from "../../shared/config";
import { JSON_BOUNDS } from "../../shared/http/json";
import { silentLogger } from "../../shared/log";
import type { AppServices } from "../../shared/routes";
import { useAzurite } from "../helpers/azurite";
import { WPS_KEY, localEnv, sas } from "../helpers/controlPlane";
import { MemoryRelay, ScriptedSignaller, joiningDevice } from "../helpers/fakes";

const V = `api-version=${API_VERSIONS[0]}`;
const MB = 1024 * 1024;
const HUGE = 95 * MB;
const CHUNK = Buffer.alloc(64 * 1024, 0x7b); // "{{{{…": as hostile as any byte

const azurite = useAzurite();
let host: LocalHost;
let services: AppServices;
const signaller = new ScriptedSignaller();
const relay = new MemoryRelay();

beforeAll(async () => {
  const plane = await startControlPlaneHost();
  host = plane.host;
  const config = loadConfig(localEnv(azurite().connectionString));
  services = await createServices(config, { relay, signaller, logger: silentLogger });
  plane.attach(services);
}, 30_000);
afterAll(() => host?.close());

interface Answer {
  status: number;
  /** Milliseconds from the first byte sent to the response's headers. */
  ms: number;
  /** Body bytes handed to the socket before the answer came. */
  sent: number;
  body: string;
}

/**
 * POSTs `size` bytes, produced as the socket drains (never held in memory), and stops sending as
 * soon as the answer arrives. `chunked` leaves out Content-Length.
 */
function upload(path: string, headers: Record<string, string>, size: number, chunked: boolean) {
  return new Promise<Answer>((resolve, reject) => {
    const started = performance.now();
    let sent = 0;
    let answered = false;
    const req = httpRequest(`${host.url}${path}`, {
      method: "POST",
      agent: false,
      headers: chunked ? headers : { ...headers, "content-length": String(size) },
    });
    req.on("response", (res) => {
      answered = true;
      const ms = performance.now() - started;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (text: string) => (body += text));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, ms, sent, body });
        req.destroy();
      });
      res.on("error", reject);
    });
    // The host closes the connection after refusing a body; writes still in flight then fail.
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    const pump = () => {
      while (!answered && sent < size) {
        const room = req.write(CHUNK);
        sent += CHUNK.length;
        if (!room) return void req.once("drain", pump);
      }
      if (!answered) req.end();
    };
    // Written only once connected, so what `sent` counts has left this process's buffers.
    req.flushHeaders();
    req.once("socket", (socket) => (socket.connecting ? socket.once("connect", pump) : pump()));
  });
}

const eventHeaders = (connectionId: string, signed: boolean): Record<string, string> => ({
  "ce-type": "azure.webpubsub.user.report",
  "ce-connectionid": connectionId,
  "ce-hub": "streams",
  "ce-userid": "AAAAAAAAAAAAAAAAAAAAAA.device",
  "content-type": "application/json",
  ...(signed ? { "ce-signature": signConnectionId(WPS_KEY, connectionId) } : {}),
});

describe("bounded work before authentication (issue 12 row 3)", () => {
  it("answers three concurrent 95 MB unauthenticated POSTs to /api/relay/events within a second each, RSS +<30 MB", async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
    const sampler = setInterval(sample, 5);
    const run = async (chunked: boolean) => {
      const answers = await Promise.all(
        [1, 2, 3].map((n) =>
          upload("/api/relay/events", eventHeaders(`c${n}`, false), HUGE, chunked).finally(sample),
        ),
      );
      return answers;
    };
    let declared: Answer[];
    let chunked: Answer[];
    try {
      declared = await run(false);
      chunked = await run(true);
    } finally {
      clearInterval(sampler);
      sample();
    }
    const grewMb = (peak - before) / MB;
    if (process.env.REPORT_FIGURES) {
      process.stdout.write(
        `row 3: RSS ${(before / MB).toFixed(1)} MB -> peak ${(peak / MB).toFixed(1)} MB (+${grewMb.toFixed(1)} MB); ` +
          `answers in ${[...declared, ...chunked].map((a) => a.ms.toFixed(0)).join(", ")} ms; ` +
          `sent before the answer ${[...declared, ...chunked].map((a) => (a.sent / MB).toFixed(1)).join(", ")} MB\n`,
      );
    }
    // A declared size over the route's limit is refused before anything else, unread.
    for (const a of declared) {
      expect(a.status).toBe(413);
      expect(JSON.parse(a.body).error.code).toBe("RequestBodyTooLarge");
    }
    // A chunked body has no size to refuse by; an unauthenticated one is never read at all.
    for (const a of chunked) {
      expect(a.status).toBe(401);
      expect(JSON.parse(a.body).error.code).toBe("Unauthenticated");
    }
    for (const a of [...declared, ...chunked]) {
      expect(a.ms).toBeLessThan(1000);
      expect(a.sent).toBeLessThan(HUGE);
    }
    expect(grewMb).toBeLessThan(30);
  });

  it("stops reading an authenticated chunked event at the route's limit and answers 413", async () => {
    const before = process.memoryUsage().rss;
    const answer = await upload("/api/relay/events", eventHeaders("c-signed", true), HUGE, true);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe("RequestBodyTooLarge");
    expect(answer.ms).toBeLessThan(1000);
    expect(answer.sent).toBeLessThan(HUGE);
    expect((process.memoryUsage().rss - before) / MB).toBeLessThan(30);
  });

  it("takes an event as large as Web PubSub can send", async () => {
    const report = JSON.stringify({ bytesSent: 1, pad: "x".repeat(MAX_EVENT_BYTES - 40) });
    expect(Buffer.byteLength(report)).toBeLessThanOrEqual(MAX_EVENT_BYTES);
    const res = await fetch(`${host.url}/api/relay/events`, {
      method: "POST",
      headers: eventHeaders("c-big", true),
      body: report,
    });
    // Not refused for its size: the report is read and handled (no stream has this user id).
    expect(res.status).not.toBe(413);
    expect(res.status).toBeLessThan(500);
  });

  it("refuses a stream creation over the data cap plus envelope by Content-Length, before authentication", async () => {
    for (const chunked of [false, true]) {
      const answer = await upload(
        `/api/devices/${encodeIdSegment("dev1")}/streams?${V}`,
        { "content-type": "application/json", authorization: chunked ? sas() : "none" },
        HUGE,
        chunked,
      );
      expect(answer.status).toBe(413);
      expect(answer.ms).toBeLessThan(1000);
      expect(answer.sent).toBeLessThan(HUGE);
    }
  });
});

/** `{"name":"ssh","data":[[[…]]]}` with `depth` levels of nesting in `data`. */
function nested(depth: number): string {
  return `{"name":"ssh","data":${"[".repeat(depth)}${"]".repeat(depth)}}`;
}

async function create(body: string) {
  const res = await fetch(`${host.url}/api/devices/${encodeIdSegment("deep-dev")}/streams?${V}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: sas() },
    body,
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

describe("JSON bounded before validation (issue 12 row 8)", () => {
  beforeAll(() => {
    signaller.answer = joiningDevice(() => services.service, relay);
  });

  it("answers data nested 2,000 levels deep with a 400 naming the field", async () => {
    const { status, body } = await create(nested(2000));
    expect(status).toBe(400);
    expect(body.error).toEqual({
      code: "InvalidRequestBody",
      message: `data: nested deeper than ${JSON_BOUNDS.maxDepth} levels`,
      field: "data",
    });
  });

  it("answers a number JSON cannot hold with a 400 naming the field", async () => {
    for (const [text, field] of [
      ['{"name":"ssh","data":{"n":1e400}}', "data"],
      ['{"name":"ssh","handshakeTimeoutSeconds":-1e999}', "handshakeTimeoutSeconds"],
    ] as const) {
      const { status, body } = await create(text);
      expect(status).toBe(400);
      expect(body.error?.message.startsWith(field)).toBe(true);
    }
  });

  it("still accepts data as deep as the limit", async () => {
    const { status } = await create(nested(JSON_BOUNDS.maxDepth - 1));
    expect(status).toBe(201);
  });
});
