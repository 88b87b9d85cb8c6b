/**
 * What keeps `devicestream connect` light (issue 17, docs/performance.md "Footprint"): its
 * control-plane requests go through node:http (client/cli/httpFetch.ts), not Node's fetch, and
 * https-proxy-agent loads only when a proxy applies. And the agent keeps V8's young generation at
 * its initial size (client/cli/heap.ts), which held most of its RSS after a bulk transfer.
 */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import ts from "typescript";
import { MAX_RESPONSE_BYTES, httpFetch } from "../../client/cli/httpFetch";
import { runCli } from "../../client/cli/program";

const execFileAsync = promisify(execFile);

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let server: Server;
let base: string;
let handler: Handler;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, Buffer.concat(chunks).toString(), res));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("the CLI's control-plane requests", () => {
  const realFetch = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  it("do not go through Node's fetch (undici would load in every fresh connect)", async () => {
    globalThis.fetch = () => Promise.reject(new Error("Node's fetch was called"));
    let seen: { method?: string; url?: string; authorization?: string } = {};
    handler = (req, _body, res) => {
      seen = { method: req.method, url: req.url, authorization: req.headers.authorization };
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          relay: { endpoint: "ws://127.0.0.1:1/client/hubs/streams", hub: "streams" },
          iotHub: { hostName: "hub.example.net", methodName: "deviceStream" },
          apiVersions: ["2026-12-01"],
        }),
      );
    };
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const key = Buffer.alloc(32, 3).toString("base64");
    const code = await runCli(
      [
        "endpoints",
        "--connection-string",
        `Endpoint=${base};SharedAccessKeyName=service;SharedAccessKey=${key}`,
      ],
      {
        stdin: new PassThrough(),
        stdout: new PassThrough().on("data", (b: Buffer) => out.push(b)),
        stderr: new PassThrough().on("data", (b: Buffer) => err.push(b)),
        env: {},
        cwd: process.cwd(),
        signal: new AbortController().signal,
      },
    );
    expect({ code, stderr: Buffer.concat(err).toString() }).toEqual({ code: 0, stderr: "" });
    expect(Buffer.concat(out).toString()).toMatch(/relay endpoint {2}http:\/\/127\.0\.0\.1:1\n/);
    expect(seen).toMatchObject({ method: "GET", url: expect.stringMatching(/^\/api\/endpoints\?/) });
    expect(seen.authorization).toMatch(/^SharedAccessSignature sr=127\.0\.0\.1&sig=/);
  });
});

describe("httpFetch", () => {
  it("sends the method, headers and string body, and answers status and text", async () => {
    let seen: { method?: string; type?: string; length?: string; body?: string } = {};
    handler = (req, body, res) => {
      seen = {
        method: req.method,
        type: req.headers["content-type"],
        length: req.headers["content-length"],
        body,
      };
      res.statusCode = 201;
      res.end('{"ok":"é"}');
    };
    const res = await httpFetch(new URL("/x", base), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"name":"é"}',
    });
    expect({ ok: res.ok, status: res.status, text: await res.text() }).toEqual({
      ok: true,
      status: 201,
      text: '{"ok":"é"}',
    });
    expect(seen).toEqual({ method: "POST", type: "application/json", length: "13", body: '{"name":"é"}' });
  });

  it("does not follow a redirect: the authorization never goes where a response points", async () => {
    let requests = 0;
    handler = (_req, _body, res) => {
      requests++;
      res.statusCode = 307;
      res.setHeader("location", `${base}/elsewhere`);
      res.end();
    };
    const res = await httpFetch(`${base}/x`, { headers: { authorization: "secret" } });
    expect({ ok: res.ok, status: res.status, requests }).toEqual({ ok: false, status: 307, requests: 1 });
  });

  it("refuses a response larger than its bound", async () => {
    handler = (_req, _body, res) => {
      res.end(Buffer.alloc(MAX_RESPONSE_BYTES + 1, 0x61));
    };
    const res = await httpFetch(`${base}/big`);
    await expect(res.text()).rejects.toThrow(/larger than/);
  });

  it("fails as fetch does when nothing listens: a TypeError whose cause names the error", async () => {
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const failure = (await httpFetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e)) as TypeError;
    expect(failure).toBeInstanceOf(TypeError);
    expect((failure.cause as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
  });

  it("stops when its signal aborts, before or during the request", async () => {
    const before = new AbortController();
    before.abort(new Error("gone"));
    await expect(httpFetch(`${base}/x`, { signal: before.signal })).rejects.toThrow(/gone/);

    const during = new AbortController();
    handler = () => during.abort(new Error("stopped")); // never answers
    await expect(httpFetch(`${base}/x`, { signal: during.signal })).rejects.toThrow(/fetch failed/);
  });

  it("takes only http(s) URLs, headers as a plain object and string bodies", async () => {
    await expect(httpFetch(`${base}/x`, { headers: [["authorization", "secret"]] })).rejects.toThrow(
      /headers must be a plain object/,
    );
    await expect(httpFetch("file:///etc/passwd")).rejects.toThrow(/unsupported scheme file:/);
    await expect(httpFetch(`${base}/x`, { method: "POST", body: new Uint8Array(1) })).rejects.toThrow(
      /only a string body/,
    );
  });
});

describe("https-proxy-agent", () => {
  afterEach(() => jest.dontMock("https-proxy-agent"));

  it("loads only when a proxy applies", () => {
    let proxyAgentFor!: typeof import("../../client/sdk/relay/proxy").proxyAgentFor;
    jest.isolateModules(() => {
      jest.doMock("https-proxy-agent", () => {
        throw new Error("https-proxy-agent loaded");
      });
      ({ proxyAgentFor } = jest.requireActual<typeof import("../../client/sdk/relay/proxy")>(
        "../../client/sdk/relay/proxy",
      ));
    });
    const url = new URL("wss://relay.example.net/client/hubs/streams");
    expect(proxyAgentFor(url, {})).toBeUndefined();
    expect(
      proxyAgentFor(url, { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: ".example.net" }),
    ).toBeUndefined();
    expect(() => proxyAgentFor(url, { HTTPS_PROXY: "http://proxy:3128" })).toThrow(/loaded/);
  });
});

describe("the agent's young generation", () => {
  afterEach(() => {
    jest.dontMock("../../client/cli/heap");
    jest.dontMock("azure-iot-device");
  });

  it("is kept small before the device SDK loads", async () => {
    const order: string[] = [];
    let run!: typeof runCli;
    jest.isolateModules(() => {
      jest.doMock("../../client/cli/heap", () => ({
        keepYoungGenerationSmall: () => order.push("heap"),
      }));
      jest.doMock("azure-iot-device", () => {
        order.push("device SDK");
        return jest.requireActual("azure-iot-device");
      });
      ({ runCli: run } =
        jest.requireActual<typeof import("../../client/cli/program")>("../../client/cli/program"));
    });
    const err: Buffer[] = [];
    const code = await run(
      [
        "device",
        "--echo",
        // No key: the agent stops at the identity check, after its start-up and before any I/O.
        ...["--connection-string", "HostName=hub.example.net;DeviceId=d1"],
        ...["--relay-endpoint", "https://relay.example.net", "--relay-hub", "streams"],
      ],
      {
        stdin: new PassThrough(),
        stdout: new PassThrough(),
        stderr: new PassThrough().on("data", (b: Buffer) => err.push(b)),
        env: {},
        cwd: process.cwd(),
        signal: new AbortController().signal,
      },
    );
    expect(Buffer.concat(err).toString()).toMatch(/needs HostName, DeviceId and SharedAccessKey/);
    expect(code).not.toBe(0);
    expect(order).toEqual(["heap", "device SDK"]);
  });

  /** Runs client/cli/heap.ts in a fresh Node, then allocates; prints the new space's size in MiB. */
  async function newSpaceAfterAllocating(call: string, env: NodeJS.ProcessEnv = {}): Promise<number> {
    const source = await readFile(join(__dirname, "../../client/cli/heap.ts"), "utf8");
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
    });
    const code = [
      "const module = { exports: {} }; const exports = module.exports;",
      outputText,
      call,
      "let keep = []; for (let i = 0; i < 300000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 5000) keep = []; }",
      "const s = require('node:v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');",
      "process.stdout.write(String(s.space_size / 1048576));",
    ].join("\n");
    const { stdout } = await execFileAsync(process.execPath, ["-e", code], {
      env: { ...process.env, ...env },
    });
    return Number(stdout);
  }

  it("stays at its initial size under allocation, where V8 would grow it to 16 MiB semi-spaces", async () => {
    const grown = await newSpaceAfterAllocating("");
    const kept = await newSpaceAfterAllocating(
      "if (!exports.keepYoungGenerationSmall()) throw new Error('not set');",
    );
    expect(grown).toBeGreaterThanOrEqual(8);
    expect(kept).toBeLessThanOrEqual(4);
  });

  it("leaves a size the user chose in NODE_OPTIONS alone", async () => {
    const { keepYoungGenerationSmall } =
      jest.requireActual<typeof import("../../client/cli/heap")>("../../client/cli/heap");
    expect(keepYoungGenerationSmall([], "--max-old-space-size=64 --max-semi-space-size=8")).toBe(false);
    expect(keepYoungGenerationSmall(["--max-semi-space-size=8"], undefined)).toBe(false);
    const chose = await newSpaceAfterAllocating(
      "if (exports.keepYoungGenerationSmall()) throw new Error('set over the user');",
      { NODE_OPTIONS: "--max-semi-space-size=8" },
    );
    expect(chose).toBeGreaterThanOrEqual(8);
  });
});
