import { errors } from "azure-iot-common";
import {
  UsageError,
  collectAllows,
  parseAllow,
  parseBytes,
  parseEnvFile,
  parseHostPort,
  parseListen,
  parsePositiveInt,
  parseTransport,
  parseTtl,
  parseTunnelKeepalive,
} from "../../client/cli/args";
import { identityOf, webSocketHost } from "../../client/cli/deviceClient";
import { EXIT, exitCodeFor } from "../../client/cli/exitCodes";
import { parseConnectionString, StreamsError } from "../../client/sdk/service";

describe("parseAllow", () => {
  it.each([
    ["ssh=127.0.0.1:22", { name: "ssh", target: { host: "127.0.0.1", port: 22 } }],
    ["web.ui=localhost:8080", { name: "web.ui", target: { host: "localhost", port: 8080 } }],
    ["rdp=[::1]:3389", { name: "rdp", target: { host: "::1", port: 3389 } }],
    ["a:b-c_d=plc.local:502", { name: "a:b-c_d", target: { host: "plc.local", port: 502 } }],
  ])("%s", (text, expected) => expect(parseAllow(text)).toEqual(expected));

  it.each([
    ["ssh", /NAME=HOST:PORT/],
    ["=host:22", /stream name ''/],
    ["-x=host:22", /stream name/],
    ["ssh=host", /HOST:PORT/],
    ["ssh=host:0", /must not be 0/],
    ["ssh=host:65536", /0 to 65535/],
    ["ssh=host:22x", /0 to 65535/],
    ["ssh=::1:22", /IPv6/],
    ["ssh=:22", /HOST:PORT/],
  ])("rejects %s", (text, message) => {
    expect(() => parseAllow(text)).toThrow(UsageError);
    expect(() => parseAllow(text)).toThrow(message);
  });

  it("collects repeated mappings, refuses a name given twice, adds echo", () => {
    expect([...collectAllows(["a=h:1", "b=h:2"], true).keys()]).toEqual(["echo", "a", "b"]);
    expect(() => collectAllows(["a=h:1", "a=h:2"], false)).toThrow(/mapped twice/);
    expect(() => collectAllows(["echo=h:1"], true)).toThrow(/mapped twice/);
  });
});

describe("host:port and listen", () => {
  it.each([
    ["2222", { host: "127.0.0.1", port: 2222 }],
    ["0.0.0.0:2222", { host: "0.0.0.0", port: 2222 }],
    ["[::]:0", { host: "::", port: 0 }],
    ["localhost:1", { host: "localhost", port: 1 }],
  ])("--listen %s", (text, expected) => expect(parseListen(text)).toEqual(expected));

  it.each(["", "abc", "host:", "host:-1", "a b:22", "99999"])("rejects --listen '%s'", (text) =>
    expect(() => parseListen(text)).toThrow(UsageError),
  );

  it("needs a host without a default", () => expect(() => parseHostPort("22")).toThrow(/HOST:PORT/));
});

describe("numbers, sizes, durations, transports", () => {
  it.each([
    ["1000", 1000],
    ["64k", 65536],
    ["16M", 16 * 1024 * 1024],
    ["1G", 1024 ** 3],
    ["2MiB", 2 * 1024 * 1024],
  ])("--bytes %s", (text, n) => expect(parseBytes(text)).toBe(n));
  it.each(["0", "-1", "1.5M", "M", "12T", ""])("rejects --bytes '%s'", (text) =>
    expect(() => parseBytes(text)).toThrow(/--bytes expects/),
  );
  it.each([
    ["1", 1],
    ["60", 60],
  ])("positive int %s", (text, n) => expect(parsePositiveInt(text, "--x", 60)).toBe(n));
  it.each(["0", "61", "1e3", "x", " 1"])("rejects positive int '%s'", (text) =>
    expect(() => parsePositiveInt(text, "--x", 60)).toThrow(/--x must be a whole number from 1 to 60/),
  );
  it.each([
    ["90", 90],
    ["30m", 1800],
    ["12h", 43200],
    ["7d", 604800],
    ["365d", 31_536_000],
  ])("--ttl %s", (text, n) => expect(parseTtl(text, 365 * 86400)).toBe(n));
  it.each(["0", "1w", "h", "99999999999999999999d"])("rejects --ttl '%s'", (text) =>
    expect(() => parseTtl(text, 365 * 86400)).toThrow(/--ttl expects e\.g\. 3600/),
  );
  it.each(["366d", "99999999999d", "31536001"])("refuses --ttl '%s' beyond the maximum, saying why", (text) =>
    expect(() => parseTtl(text, 365 * 86400)).toThrow(
      /--ttl .* is longer than the 365d \(31536000 s\) the control plane accepts by default \(SERVICE_SAS_MAX_LIFETIME_SECONDS\)/,
    ),
  );
  it("tunnel keepalive", () => {
    expect(parseTunnelKeepalive("15")).toEqual({
      keepaliveIntervalInMs: 15_000,
      keepaliveTimeoutInMs: 45_000,
    });
    expect(() => parseTunnelKeepalive("0")).toThrow(/--tunnel-keepalive must be a whole number/);
  });
  it("transport", () => {
    expect(parseTransport("mqtt")).toBe("mqtt");
    expect(parseTransport("mqtt-ws")).toBe("mqtt-ws");
    expect(() => parseTransport("amqp")).toThrow(/mqtt or mqtt-ws/);
  });
});

describe("credentials", () => {
  it("parses env files", () => {
    expect(parseEnvFile("# c\nA=1\n\nexport B = 'two'\nC=\"x=y\"\nnot a pair\n")).toEqual({
      A: "1",
      B: "two",
      C: "x=y",
    });
  });

  it.each([
    [
      "Endpoint=http://localhost:7071;SharedAccessKeyName=service;SharedAccessKey=AAAA=",
      { endpoint: "http://localhost:7071", policyName: "service", key: "AAAA=" },
    ],
    [
      "endpoint=https://x.azurewebsites.net/;sharedaccesskeyname=p;sharedaccesskey=k;SasResource=x;",
      { endpoint: "https://x.azurewebsites.net/", policyName: "p", key: "k", sasResource: "x" },
    ],
  ])("connection string %s", (text, expected) => expect(parseConnectionString(text)).toEqual(expected));

  it.each([
    ["Endpoint=http://h;SharedAccessKeyName=p", /missing SharedAccessKey/],
    ["SharedAccessKeyName=p;SharedAccessKey=k", /missing Endpoint/],
    ["Endpoint=ftp://h;SharedAccessKeyName=p;SharedAccessKey=k", /http\(s\) URL/],
    ["garbage", /Key=value/],
  ])("rejects connection string %s", (text, message) => {
    expect(() => parseConnectionString(text)).toThrow(message);
  });
});

describe("device identity", () => {
  it.each([
    [
      "HostName=h.azure-devices.net;DeviceId=Dev-1;SharedAccessKey=a2V5",
      { hostName: "h.azure-devices.net", deviceId: "Dev-1" },
    ],
    [
      "HostName=h;DeviceId=D;ModuleId=streams;SharedAccessKey=a2V5;GatewayHostName=g",
      { hostName: "h", deviceId: "D", moduleId: "streams", gatewayHostName: "g" },
    ],
  ])("%s", (cs, expected) => expect(identityOf(cs)).toEqual(expected));

  it.each([
    [{ deviceId: "d", hostName: "h.azure-devices.net" }, "h.azure-devices.net"],
    [{ deviceId: "d", hostName: "h.azure-devices.net", gatewayHostName: "localhost" }, "localhost"],
    [{ deviceId: "d", hostName: "h", gatewayHostName: "[::1]" }, "[::1]"],
  ])("mqtt-ws dials %j at %s", (identity, host) => expect(webSocketHost(identity)).toBe(host));

  it.each([
    { deviceId: "d", hostName: "h", gatewayHostName: "127.0.0.1:8883" },
    { deviceId: "d", hostName: "h", gatewayHostName: "[::1]:8883" },
    { deviceId: "d", hostName: "localhost:8883" },
  ])("mqtt-ws refuses a host with a port: %j", (identity) =>
    expect(() => webSocketHost(identity)).toThrow(/always dials port 443 .*must not carry a port/),
  );

  it.each([
    "HostName=h;SharedAccessKey=k",
    "DeviceId=D;SharedAccessKey=k",
    "HostName=h;DeviceId=D",
    "nonsense",
  ])("rejects %s with what is needed", (cs) =>
    expect(() => identityOf(cs)).toThrow(/needs HostName, DeviceId and SharedAccessKey/),
  );
});

describe("exit codes", () => {
  it.each([
    [new UsageError("x"), EXIT.usage],
    [new StreamsError("InvalidConnectionString", "x"), EXIT.usage],
    [new StreamsError("Unauthorized", "x", 401), EXIT.auth],
    [new StreamsError("Forbidden", "x", 403), EXIT.auth],
    [new StreamsError("RelayRefused", "x", 401), EXIT.streamFailed],
    [new StreamsError("DeviceNotFound", "x", 404), EXIT.notFound],
    [new StreamsError("DeviceNotOnline", "x", 404), EXIT.deviceUnavailable],
    [new StreamsError("DeviceTimeout", "x", 504), EXIT.deviceUnavailable],
    [new StreamsError("StreamRejected", "x", 409), EXIT.rejected],
    [new StreamsError("ServiceUnreachable", "x"), EXIT.unavailable],
    [new StreamsError("Throttled", "x", 429), EXIT.unavailable],
    [new StreamsError("TransportClosed", "x"), EXIT.streamFailed],
    // The device SDK's, when the agent connects to IoT Hub.
    [new errors.UnauthorizedError("x"), EXIT.auth],
    [new errors.NotConnectedError("x"), EXIT.deviceUnavailable],
    [new errors.ServiceUnavailableError("x"), EXIT.deviceUnavailable],
    [new Error("bug"), EXIT.error],
  ])("case %#", (err, code) => expect(exitCodeFor(err)).toBe(code));
});
