/** The emulator's small pure pieces, table-driven. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SharedAccessSignature } from "azure-iot-common";
import { HubHosts } from "../../../emulators/iothub/hub";
import { parseIdentityKey } from "../../../emulators/iothub/identity";
import { maySubscribe, mayPublish, parseMethodResponseTopic } from "../../../emulators/iothub/mqtt/topics";
import { TokenBucket } from "../../../emulators/iothub/rateLimit";
import { IdentityRegistry } from "../../../emulators/iothub/registry";
import { parseSas, verifySas } from "../../../emulators/iothub/sas";

const KEY = Buffer.alloc(32, 9).toString("base64");
const OTHER = Buffer.alloc(32, 8).toString("base64");
const future = Math.floor(Date.now() / 1000) + 3600;

describe("SAS tokens", () => {
  test("a token made by the SDK verifies with its key, the secondary key or not at all", () => {
    const token = SharedAccessSignature.create(
      encodeURIComponent("hub/devices/d"),
      "",
      KEY,
      future,
    ).toString();
    const sas = parseSas(token);
    expect(sas.resource).toBe("hub/devices/d");
    expect(() => verifySas(sas, [OTHER, KEY])).not.toThrow();
    expect(() => verifySas(sas, [OTHER])).toThrow(/signature does not match/);
    expect(() => verifySas(sas, [KEY], (future + 1) * 1000)).toThrow(/expired/);
  });

  test.each([
    ["Bearer x", /not a SharedAccessSignature/],
    ["SharedAccessSignature sr=a&se=1", /needs sr, sig and se/],
    ["SharedAccessSignature sr=a&sig=AAAA&se=1", /not an HMAC-SHA256/],
    ["SharedAccessSignature sr=a&sig=x&se=soon", /epoch time/],
    ["SharedAccessSignature sr=a&sr=b&sig=x&se=1", /duplicate/],
    ["SharedAccessSignature sr=a&sig=%E0%A4%A&se=1", /URL encoding/],
    ["SharedAccessSignature novalue&sig=x", /malformed/],
  ])("%j is refused", (token, message) => {
    expect(() => parseSas(token)).toThrow(message);
  });
});

test.each([
  ["devicestreams.azure-devices.net", true],
  ["DeviceStreams.Azure-Devices.NET", true],
  ["localhost:8443", true],
  ["127.0.0.1", true],
  ["[::1]:8443", true],
  ["otherhub.azure-devices.net", false],
  ["localhost.evil.com", false],
  ["", false],
])("HubHosts accepts %j: %s", (authority, expected) => {
  expect(new HubHosts("devicestreams", "127.0.0.1").accepts(authority)).toBe(expected);
});

test.each([
  ["dev", { deviceId: "dev" }],
  ["dev/mod", { deviceId: "dev", moduleId: "mod" }],
  ["a/b/c", undefined],
  ["", undefined],
  ["dev/", undefined],
  ["Dev#1?x'(y)+;", { deviceId: "Dev#1?x'(y)+;" }],
  ["dev mod", undefined],
  ["d\u00e9v", undefined],
])("client ID %j is identity %j", (clientId, identity) => {
  expect(parseIdentityKey(clientId)).toEqual(identity);
});

describe("topics", () => {
  const device = { deviceId: "d" };
  const module = { deviceId: "d", moduleId: "m" };
  test.each([
    [device, "$iothub/methods/POST/#", true],
    [device, "devices/d/messages/devicebound/#", true],
    [device, "devices/e/messages/devicebound/#", false],
    [device, "devices/d/modules/m/inputs/#", false],
    [module, "devices/d/modules/m/inputs/#", true],
    [module, "devices/d/messages/devicebound/#", false],
    [device, "$iothub/methods/POST/+", false],
  ])("%j may subscribe %s: %s", (identity, filter, expected) => {
    expect(maySubscribe(identity, filter)).toBe(expected);
  });

  test.each([
    [device, "$iothub/methods/res/200/?$rid=1", true],
    [device, "devices/d/messages/events/a=b", true],
    [device, "devices/e/messages/events/", false],
    [device, "$iothub/methods/POST/x/?$rid=1", false],
    [module, "devices/d/modules/m/messages/events/", true],
    [module, "devices/d/messages/events/", false],
  ])("%j may publish %s: %s", (identity, topic, expected) => {
    expect(mayPublish(identity, topic)).toBe(expected);
  });

  test.each([
    ["$iothub/methods/res/200/?$rid=1a", { status: 200, rid: "1a" }],
    ["$iothub/methods/res/-1/?$rid=2&x=y", { status: -1, rid: "2" }],
    ["$iothub/methods/res/200/?x=1", undefined],
    ["$iothub/methods/res/abc/?$rid=1", undefined],
    ["$iothub/methods/res/99999999999/?$rid=1", undefined],
  ])("method answer %s", (topic, expected) => {
    expect(parseMethodResponseTopic(topic)).toEqual(expected);
  });
});

test("the token bucket refills at its rate and says when to retry", () => {
  let now = 0;
  const bucket = new TokenBucket(2, () => now);
  expect(bucket.take()).toEqual({ ok: true });
  expect(bucket.take()).toEqual({ ok: true });
  expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
  now = 500;
  expect(bucket.take()).toEqual({ ok: true });
  expect(() => new TokenBucket(0)).toThrow(RangeError);
});

describe("registry file", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "iothub-registry-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each([
    ["{broken", /not valid JSON/],
    ['{"version":2,"identities":[]}', /unknown format/],
    ['{"version":1,"identities":[{"deviceId":1}]}', /unknown format/],
  ])("%j is refused with a clear error", async (text, message) => {
    const file = path.join(dir, "registry.json");
    await writeFile(file, text);
    await expect(new IdentityRegistry(file).load()).rejects.toThrow(message);
  });

  test("changes are written through and read back", async () => {
    const file = path.join(dir, "registry.json");
    const first = new IdentityRegistry(file);
    await first.create({ deviceId: "d" });
    await first.create({ deviceId: "d", moduleId: "m" });
    const second = new IdentityRegistry(file);
    await second.load();
    expect(second.get({ deviceId: "d", moduleId: "m" })?.primaryKey).toBe(
      first.get({ deviceId: "d", moduleId: "m" })?.primaryKey,
    );
  });
});
