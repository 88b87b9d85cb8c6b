import { randomBytes } from "node:crypto";
import { HttpRequest } from "@azure/functions";
import { SharedAccessSignature } from "azure-iot-common";
import { ApiError } from "../../shared/errors";
import { AuthChain } from "../../shared/auth/chain";
import {
  mintSasToken,
  parseSasToken,
  SasAuthenticator,
  SasFormatError,
  SasVerifier,
} from "../../shared/auth/sas";
import { openedBy, type SasPrincipal } from "../../shared/auth/principal";

const RESOURCE = "func-devicestreams.azurewebsites.net";
const primary = randomBytes(32).toString("base64");
const secondary = randomBytes(48).toString("base64");
const otherKey = randomBytes(32).toString("base64");
/** A well-formed (but wrong) signature, so that table rows reach the check they are about. */
const SIG = encodeURIComponent(randomBytes(32).toString("base64"));
const NOW = Date.UTC(2026, 10, 22, 6, 0, 0);
const nowSeconds = NOW / 1000;

const policies = [
  { name: "service", primaryKey: primary, secondaryKey: secondary, devices: ["*"], streams: ["*"] },
  { name: "reader", primaryKey: otherKey, devices: ["*"], streams: ["*"], actions: ["list" as const] },
];

const chain = new AuthChain<SasPrincipal>([
  new SasAuthenticator({ resource: RESOURCE, policies, now: () => NOW }),
]);

function mint(overrides: Partial<Parameters<typeof mintSasToken>[0]> = {}): string {
  return mintSasToken({
    resource: RESOURCE,
    policyName: "service",
    key: primary,
    ttlSeconds: 3600,
    now: new Date(NOW),
    ...overrides,
  });
}

function headersOf(authorization: string): HttpRequest["headers"] {
  return new HttpRequest({
    method: "POST",
    url: "http://localhost/api/devices/d/streams",
    headers: { authorization },
  }).headers;
}

/** Raw header source: lets the fuzz reach us with values a fetch Headers object would refuse. */
function rawHeaders(authorization: string) {
  return { get: (name: string) => (name === "authorization" ? authorization : null) };
}

async function outcome(authorization: string, raw = false): Promise<SasPrincipal | ApiError> {
  const headers = raw ? rawHeaders(authorization) : headersOf(authorization);
  return chain.authenticate(headers).catch((err: unknown) => {
    if (err instanceof ApiError) return err;
    throw err;
  });
}

async function expect401(authorization: string, message?: string | RegExp): Promise<void> {
  const result = await outcome(authorization);
  expect(result).toBeInstanceOf(ApiError);
  const err = result as ApiError;
  expect(err.statusCode).toBe(401);
  const sig = /sig=([^&]+)/.exec(authorization)?.[1];
  if (sig && sig.length >= 16) expect(err.message).not.toContain(sig);
  if (message !== undefined) expect(err.message).toMatch(message);
}

describe("mintSasToken", () => {
  it("produces the IoT Hub format", () => {
    const token = mint({ resource: "Host:7071/x y", policyName: "a b" });
    expect(token).toMatch(/^SharedAccessSignature sr=Host%3A7071%2Fx%20y&sig=[^&]+&se=\d+&skn=a%20b$/);
    const parsed = parseSasToken(token);
    expect(parsed).toMatchObject({
      resource: "Host:7071/x y",
      signedResource: "Host%3A7071%2Fx%20y",
      policyName: "a b",
      expiry: nowSeconds + 3600,
    });
  });

  it("takes an absolute expiry", () => {
    const token = mint({ ttlSeconds: undefined, expiresAt: new Date(NOW + 90_000) });
    expect(parseSasToken(token).expiry).toBe(nowSeconds + 90);
  });

  it.each([
    [{ resource: "" }, /resource/],
    [{ policyName: "" }, /policyName/],
    [{ key: "not base64!" }, /base64/],
    [{ expiresAt: new Date(NOW) }, /exactly one/],
    [{ ttlSeconds: 0 }, /positive/],
    [{ ttlSeconds: 1.5 }, /positive/],
  ])("refuses bad options %p", (overrides, message) => {
    expect(() => mint(overrides)).toThrow(message);
  });

  it("matches azure-iot-common's signing (interoperability both ways)", () => {
    const sdkToken = SharedAccessSignature.create(RESOURCE, "service", primary, nowSeconds + 3600).toString();
    const verifier = new SasVerifier({ resource: RESOURCE, policies, now: () => NOW });
    expect(verifier.verify(sdkToken.slice("SharedAccessSignature ".length))).toEqual({
      ok: true,
      policyName: "service",
    });
    const ours = parseSasToken(mint());
    const theirs = parseSasToken(sdkToken);
    expect(ours.signature.equals(theirs.signature)).toBe(true);
  });
});

describe("SAS authentication", () => {
  it("accepts a valid token and names the policy", async () => {
    const principal = await outcome(mint());
    expect(principal).toMatchObject({ kind: "sas", policyName: "service" });
    expect(openedBy(principal as SasPrincipal)).toBe("service");
    expect((principal as SasPrincipal).grants[0]?.source).toBe("SAS policy 'service'");
  });

  it("accepts the secondary key", async () => {
    expect(await outcome(mint({ key: secondary }))).toMatchObject({ policyName: "service" });
  });

  it("accepts fields in any order and a lower-case scheme", async () => {
    const fields = mint().slice("SharedAccessSignature ".length).split("&").reverse().join("&");
    expect(await outcome(`sharedaccesssignature ${fields}`)).toMatchObject({ policyName: "service" });
  });

  it("normalises case and a trailing slash of the resource", async () => {
    expect(await outcome(mint({ resource: `${RESOURCE.toUpperCase()}/` }))).toMatchObject({
      policyName: "service",
    });
  });

  it("refuses an expired token, allowing a small clock skew", async () => {
    await expect401(
      mint({ ttlSeconds: undefined, expiresAt: new Date(NOW - 60_000) }),
      /^SAS token expired$/,
    );
    expect(await outcome(mint({ ttlSeconds: undefined, expiresAt: new Date(NOW - 10_000) }))).toMatchObject({
      policyName: "service",
    });
  });

  it("refuses a second spelling of a valid token's expiry (se with a leading zero)", async () => {
    const token = mint();
    expect(await outcome(token)).toMatchObject({ policyName: "service" });
    await expect401(
      token.replace(/se=(\d+)/, "se=0$1"),
      /'se' must be an expiry time in epoch seconds \(digits, no leading zero\)/,
    );
  });

  it("refuses a token that lives longer than the maximum lifetime (default one year), whatever its signature", async () => {
    const year = 365 * 24 * 3600;
    expect(await outcome(mint({ ttlSeconds: year }))).toMatchObject({ policyName: "service" });
    await expect401(
      mint({ ttlSeconds: year + 3600 }),
      /^SAS token lives too long: its expiry \(se\) may be at most 31536000 seconds ahead$/,
    );
    await expect401(mint({ ttlSeconds: 100 * year }), /lives too long/);
    const hourly = new SasVerifier({
      resource: RESOURCE,
      policies,
      now: () => NOW,
      maxLifetimeSeconds: 3600,
    });
    const credentials = (t: string) => t.slice("SharedAccessSignature ".length);
    expect(hourly.verify(credentials(mint({ ttlSeconds: 3600 })))).toMatchObject({ ok: true });
    expect(hourly.verify(credentials(mint({ ttlSeconds: 7200 })))).toMatchObject({ ok: false });
  });

  it("refuses a forged token (signed with another key)", async () => {
    await expect401(mint({ key: otherKey }), /^SAS token signature is invalid$/);
  });

  it("refuses a token whose se was raised after signing", async () => {
    const token = mint().replace(/se=(\d+)/, (_m, se: string) => `se=${Number(se) + 1}`);
    await expect401(token, /signature is invalid/);
  });

  it("refuses a non-canonical spelling of a valid signature", async () => {
    const token = mint();
    const sig = decodeURIComponent(/sig=([^&]+)/.exec(token)![1]!);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const last = sig.length - 2; // 32 bytes: 43 characters and one '=', the last one carrying 2 unused bits
    const flipped = alphabet[alphabet.indexOf(sig[last]!) ^ 1]!;
    const variant = `${sig.slice(0, last)}${flipped}=`;
    expect(Buffer.from(variant, "base64").equals(Buffer.from(sig, "base64"))).toBe(true);
    await expect401(token.replace(/sig=[^&]+/, `sig=${encodeURIComponent(variant)}`), /'sig' must be/);
  });

  it("refuses an unknown policy", async () => {
    await expect401(mint({ policyName: "admin" }), /unknown policy/);
  });

  it("refuses a token for another resource", async () => {
    await expect401(mint({ resource: "other.azurewebsites.net" }), /resource \(sr\) does not match/);
    await expect401(mint({ resource: `${RESOURCE}/devices/d1` }), /IoT Hub|does not match/);
  });

  it("refuses an IoT Hub token even when it is signed with the very same key and policy name", async () => {
    for (const resource of ["myhub.azure-devices.net", "myhub.azure-devices.net/devices/dev1"]) {
      const token = SharedAccessSignature.create(
        encodeURIComponent(resource),
        "service",
        primary,
        nowSeconds + 3600,
      ).toString();
      await expect401(token, /IoT Hub/);
    }
  });

  it("refuses a device-scoped IoT Hub token (no skn)", async () => {
    const token = SharedAccessSignature.create(RESOURCE, "", primary, nowSeconds + 3600).toString();
    await expect401(token, /missing field\(s\): skn/);
  });

  it.each([
    ["", /missing Authorization header/],
    ["SharedAccessSignature", /malformed Authorization header/],
    ["SharedAccessSignature sr=a b", /malformed Authorization header/],
    ["Basic dXNlcjpwYXNz", /'Basic' is not accepted; supported: SharedAccessSignature/],
    ["SharedAccessSignature sr=x", /missing field/],
    [`SharedAccessSignature sr=x&sr=y&sig=${SIG}&se=1&skn=p`, /appears twice/],
    [`SharedAccessSignature sr=x&sig=${SIG}&se=1&skn=p&extra=1`, /unexpected field/],
    [`SharedAccessSignature sr=&sig=${SIG}&se=1&skn=p`, /'sr' has no value/],
    [`SharedAccessSignature sr=%E0%A4%A&sig=${SIG}&se=1&skn=p`, /'sr' is not valid URL encoding/],
    ["SharedAccessSignature sr=x&sig=AAAA&se=1&skn=p", /'sig' must be a base64 HMAC/],
    [`SharedAccessSignature sr=x&sig=${SIG}&se=1&skn=%ZZ`, /'skn' is not valid URL encoding/],
    [`SharedAccessSignature sr=x&sig=${SIG}&se=1&skn`, /'skn' has no value/],
    [`SharedAccessSignature sr=x&sig=${SIG}&se=-1&skn=p`, /'se' must be/],
    [`SharedAccessSignature sr=x&sig=${SIG}&se=99999999999999&skn=p`, /'se' must be/],
  ])("answers 401 with a clear reason for %p", async (header, message) => {
    await expect401(header, message);
  });

  it("SasFormatError is what parsing throws", () => {
    expect(() => parseSasToken("Bearer x")).toThrow(SasFormatError);
  });

  it("fuzz: hundreds of malformed and mutated tokens always give 401, never another error", async () => {
    const valid = mint();
    const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%&=+/ \t\u0000é\u{1F600}";
    // mulberry32: deterministic, so a failure reproduces.
    let seed = 42;
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const randomString = (length: number) =>
      Array.from({ length }, () => alphabet[random(alphabet.length)]).join("");
    const cases: string[] = [];
    for (let i = 0; i < 150; i++) {
      // Mutate one character of a valid token.
      const at = random(valid.length);
      cases.push(valid.slice(0, at) + alphabet[random(alphabet.length)]! + valid.slice(at + 1));
    }
    for (let i = 0; i < 100; i++) cases.push(`SharedAccessSignature ${randomString(1 + random(120))}`);
    for (let i = 0; i < 50; i++) {
      const parts = valid.slice(22).split("&");
      cases.push(`SharedAccessSignature ${parts.filter(() => random(2) === 0).join("&")}`);
    }
    cases.push(`SharedAccessSignature ${"sr=x&".repeat(5000)}`);
    let rejected = 0;
    for (const header of cases) {
      const result = await outcome(header, true);
      if (result instanceof ApiError) {
        expect(result.statusCode).toBe(401);
        rejected++;
      } else {
        // A mutation that does not change meaning (the case of sr or of the scheme) still passes.
        expect(result.policyName).toBe("service");
      }
    }
    expect(rejected).toBeGreaterThan(250);
  });
});
