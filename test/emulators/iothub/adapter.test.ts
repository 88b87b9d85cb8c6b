/**
 * The control plane's IoT Hub adapter against a scripted local HTTPS endpoint: the paths the
 * emulator cannot produce on demand (5xx, a hub that never answers, refused connections) and the
 * exact request the SDK sends through our port-aware builder. The emulator suite covers the rest.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { generate } from "selfsigned";
import {
  DirectMethodError,
  IotHubDirectMethodInvoker,
  createIotHubClients,
  parseIotHubErrorBody,
} from "../../../shared/iothub";

interface Seen {
  method?: string;
  url?: string;
  authorization?: string;
  body: unknown;
}

type Script = (res: ServerResponse, seen: Seen) => void;

const KEY = Buffer.alloc(32, 7).toString("base64");

describe("IotHubDirectMethodInvoker over a scripted HTTPS endpoint", () => {
  let server: Server;
  let port: number;
  let cert: string;
  let script: Script = (res) => res.end();
  const seen: Seen[] = [];

  beforeAll(async () => {
    const pems = await generate([{ name: "commonName", value: "localhost" }], {
      keyType: "ec",
      algorithm: "sha256",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] }],
    });
    cert = pems.cert;
    server = createServer({ key: pems.private, cert }, (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const entry: Seen = {
          method: req.method,
          url: req.url,
          authorization: req.headers.authorization,
          body: text ? JSON.parse(text) : undefined,
        };
        seen.push(entry);
        script(res, entry);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  });

  beforeEach(() => {
    seen.length = 0;
  });

  function invoker(): IotHubDirectMethodInvoker {
    const { client } = createIotHubClients({
      connectionString: `HostName=localhost:${port};SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`,
      ca: cert,
    });
    return new IotHubDirectMethodInvoker(client, { extraBoundMs: 200 });
  }

  function answer(status: number, body: unknown, headers: Record<string, string> = {}): Script {
    return (res) => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
  }

  const hubError = (code: number, message: string) => ({
    Message: JSON.stringify({
      errorCode: code,
      trackingId: "t",
      message,
      timestampUtc: new Date().toISOString(),
    }),
    ExceptionMessage: "",
  });

  async function failure(promise: Promise<unknown>): Promise<DirectMethodError> {
    const err: unknown = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DirectMethodError);
    return err as DirectMethodError;
  }

  const call = { methodName: "open", payload: { a: 1 }, responseTimeoutInSeconds: 5 };

  test("sends the hub's request through host:port and returns the device's status and payload", async () => {
    script = answer(200, { status: 201, payload: { ok: true } });
    const result = await invoker().invoke({ deviceId: "dev 1" }, { ...call, connectTimeoutInSeconds: 3 });
    expect(result).toEqual({ status: 201, payload: { ok: true } });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe("POST");
    expect(seen[0]?.url).toMatch(/^\/twins\/dev%201\/methods\?api-version=/);
    expect(seen[0]?.body).toEqual({
      methodName: "open",
      payload: { a: 1 },
      responseTimeoutInSeconds: 5,
      connectTimeoutInSeconds: 3,
    });
    expect(seen[0]?.authorization).toMatch(
      /^SharedAccessSignature sr=localhost:\d+&sig=.+&skn=iothubowner&se=\d+$/,
    );
  });

  test("addresses a module and maps a missing payload to null", async () => {
    script = answer(200, { status: 200 });
    const result = await invoker().invoke({ deviceId: "d", moduleId: "m" }, { ...call, payload: undefined });
    expect(result).toEqual({ status: 200, payload: null });
    expect(seen[0]?.url).toMatch(/^\/twins\/d\/modules\/m\/methods\?/);
    expect((seen[0]?.body as { payload: unknown }).payload).toBeNull();
  });

  test.each([
    [404, hubError(404001, "Device not found"), "DeviceNotFound", "404001"],
    [404, hubError(404010, "Module not found"), "ModuleNotFound", "404010"],
    [404, { Message: "ErrorCode:ModuleNotFound;Module m not found" }, "ModuleNotFound", "ModuleNotFound"],
    [404, hubError(404103, "Timed out waiting for device to connect."), "DeviceNotOnline", "404103"],
    [404, undefined, "DeviceNotOnline", undefined],
    [504, hubError(504101, "Timed out waiting for the response from device."), "Timeout", "504101"],
    [
      401,
      { Message: "ErrorCode:IotHubUnauthorizedAccess;Unauthorized" },
      "Unauthorized",
      "IotHubUnauthorizedAccess",
    ],
    [500, { Message: "ErrorCode:ServerError;boom" }, "Upstream", "ServerError"],
    [503, undefined, "Upstream", undefined],
  ])("HTTP %i %j is a %s error, sent once", async (status, body, kind, code) => {
    script = answer(status, body);
    const err = await failure(invoker().invoke({ deviceId: "d" }, call));
    expect(err.name).toBe("DirectMethodError");
    expect(err.kind).toBe(kind);
    expect(err.statusCode).toBe(status);
    expect(err.iotHubErrorCode).toBe(code);
    expect(seen).toHaveLength(1);
  });

  test("429 is Throttled with Retry-After and is not retried by the SDK", async () => {
    script = answer(429, hubError(429001, "Throttled"), { "retry-after": "7" });
    const err = await failure(invoker().invoke({ deviceId: "d" }, call));
    expect(err.kind).toBe("Throttled");
    expect(err.retryAfterSeconds).toBe(7);
    expect(seen).toHaveLength(1);
  });

  test("a hub that never answers is cut off by our own bound", async () => {
    script = () => undefined;
    const err = await failure(invoker().invoke({ deviceId: "d" }, call));
    expect(err.kind).toBe("Timeout");
    expect(err.statusCode).toBeUndefined();
  }, 15000);

  test("an abort signal ends the call with its reason", async () => {
    script = () => undefined;
    const controller = new AbortController();
    const pending = invoker().invoke({ deviceId: "d" }, call, { abortSignal: controller.signal });
    await new Promise<void>((resolve) => {
      const check = () => (seen.length > 0 ? resolve() : setImmediate(check));
      check();
    });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
  });

  test("a refused connection is an Upstream error", async () => {
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const deadPort = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, "close");
    const { client } = createIotHubClients({
      connectionString: `HostName=127.0.0.1:${deadPort};SharedAccessKeyName=iothubowner;SharedAccessKey=${KEY}`,
    });
    const err = await failure(new IotHubDirectMethodInvoker(client).invoke({ deviceId: "d" }, call));
    expect(err.kind).toBe("Upstream");
  });

  test.each([
    [{ ...call, responseTimeoutInSeconds: 4 }, /responseTimeoutInSeconds/],
    [{ ...call, connectTimeoutInSeconds: 301 }, /connectTimeoutInSeconds/],
    [{ ...call, methodName: "" }, /methodName/],
    [{ ...call, payload: "x".repeat(128 * 1024) }, /128 KB/],
  ])("refuses %# before calling the hub", async (request, message) => {
    await expect(invoker().invoke({ deviceId: "d" }, request)).rejects.toThrow(message);
    expect(seen).toHaveLength(0);
  });

  test("keyless: a TokenCredential's token goes out as a bearer token, for the client and the registry", async () => {
    const scopes: unknown[] = [];
    const credential = {
      getToken: async (scope: string | string[]) => {
        scopes.push(scope);
        return { token: "t0k3n", expiresOnTimestamp: Date.now() + 3600_000 };
      },
    };
    const { client, registry } = createIotHubClients({ hostName: `localhost:${port}`, credential, ca: cert });
    script = answer(200, { status: 200, payload: "ok" });
    await expect(new IotHubDirectMethodInvoker(client).invoke({ deviceId: "d" }, call)).resolves.toEqual({
      status: 200,
      payload: "ok",
    });
    script = answer(200, { deviceId: "d" });
    await registry!.get("d");
    expect(seen.map((s) => s.authorization)).toEqual(["Bearer t0k3n", "Bearer t0k3n"]);
    expect(scopes[0]).toBe("https://iothubs.azure.net/.default");
  });

  test("keyless: a credential that cannot produce a token is Unauthorized", async () => {
    const credential = {
      getToken: async () => {
        throw Object.assign(new Error("no identity here"), { name: "CredentialUnavailableError" });
      },
    };
    const { client } = createIotHubClients({ hostName: `localhost:${port}`, credential, ca: cert });
    const err = await failure(new IotHubDirectMethodInvoker(client).invoke({ deviceId: "d" }, call));
    expect(err.kind).toBe("Unauthorized");
    expect(seen).toHaveLength(0);
  });

  test.each([
    "HostName=localhost:1",
    "not a connection string",
    "HostName=a/b;SharedAccessKeyName=x;SharedAccessKey=eA==",
  ])("rejects the connection string %j", (connectionString) => {
    expect(() => createIotHubClients({ connectionString })).toThrow(/HostName|connection string/);
  });
});

describe("parseIotHubErrorBody", () => {
  test.each([
    [
      '{"Message":"{\\"errorCode\\":404103,\\"message\\":\\"offline\\"}"}',
      { code: "404103", message: "offline" },
    ],
    [
      '{"Message":"ErrorCode:DeviceNotFound;Device x not found"}',
      { code: "DeviceNotFound", message: "Device x not found" },
    ],
    ['{"Message":"plain"}', { message: "plain" }],
    ["not json", {}],
    ["", {}],
    [undefined, {}],
  ])("%j", (body, expected) => {
    expect(parseIotHubErrorBody(body)).toEqual(expected);
  });
});
