/**
 * The live suite's configuration from the environment: a complete one in either auth model, and
 * every partial or malformed one an error naming the variable.
 */
import type { TokenCredential } from "@azure/core-auth";
import { LIVE_VARIABLES as V, LiveConfigError, liveConfigFromEnv, targetKind } from "./config";

const CS =
  "Endpoint=https://func-api-abc.azurewebsites.net;SharedAccessKeyName=live;SharedAccessKey=a2V5a2V5";
const HUB = "iot-abc.azure-devices.net";
const WPS = "wps-abc.webpubsub.azure.com";
const credential: TokenCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: 0 }) };

function error(env: Record<string, string>): string {
  try {
    liveConfigFromEnv(env, credential);
  } catch (err) {
    expect(err).toBeInstanceOf(LiveConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a LiveConfigError");
}

describe("live configuration", () => {
  it("SAS: the connection string, the hub through Entra, the relay host", () => {
    const config = liveConfigFromEnv(
      { [V.connectionString]: CS, [V.iotHubHost]: HUB, [V.webPubSubHost]: WPS },
      credential,
    );
    expect(config).toEqual({
      controlPlane: { connectionString: CS },
      iotHub: { hostName: HUB, credential },
      devices: { hostName: HUB },
      relay: { endpoint: `https://${WPS}`, hub: "streams" },
    });
    // Nothing in the environment can allow ws:// or point devices elsewhere.
    expect(config.relay.allowInsecure).toBeUndefined();
    expect(config.devices.gatewayHostName).toBeUndefined();
  });

  it("Entra: endpoint and scope; the azd outputs' URL forms are accepted", () => {
    const config = liveConfigFromEnv(
      {
        [V.endpoint]: "https://func-api-abc.azurewebsites.net/",
        [V.tokenScope]: "api://0000/.default",
        [V.iotHubHost]: ` ${HUB} `,
        [V.webPubSubHost]: `https://${WPS}`,
        [V.webPubSubHub]: "Tunnels",
      },
      credential,
    );
    expect(config.controlPlane).toEqual({
      endpoint: "https://func-api-abc.azurewebsites.net",
      tokenScope: "api://0000/.default",
      credential,
    });
    expect(config.relay).toEqual({ endpoint: `https://${WPS}`, hub: "Tunnels" });
    expect(config.iotHub).toMatchObject({ hostName: HUB });
  });

  it("without a credential, DefaultAzureCredential is created lazily (parsing does no I/O)", () => {
    const config = liveConfigFromEnv({
      [V.connectionString]: CS,
      [V.iotHubHost]: HUB,
      [V.webPubSubHost]: WPS,
    });
    expect("credential" in config.iotHub && typeof config.iotHub.credential.getToken).toBe("function");
  });

  it("nothing set: every variable is listed", () => {
    const message = error({});
    for (const name of Object.values(V)) expect(message).toContain(name);
    expect(message).toMatch(/no live variable is set/);
  });

  it.each([
    [{ [V.iotHubHost]: HUB, [V.webPubSubHost]: WPS }, [`${V.connectionString} (or ${V.endpoint}`]],
    [{ [V.connectionString]: CS, [V.webPubSubHost]: WPS }, [`${V.iotHubHost} is missing`]],
    [{ [V.connectionString]: CS, [V.iotHubHost]: HUB }, [`${V.webPubSubHost} is missing`]],
    [{ [V.connectionString]: CS }, [`${V.iotHubHost} is missing`, `${V.webPubSubHost} is missing`]],
    [
      { [V.endpoint]: "https://x.azurewebsites.net", [V.iotHubHost]: HUB, [V.webPubSubHost]: WPS },
      [`${V.tokenScope} is missing`],
    ],
    [
      { [V.tokenScope]: "api://0000/.default", [V.iotHubHost]: HUB, [V.webPubSubHost]: WPS },
      [`${V.endpoint} is missing`],
    ],
    [
      { [V.connectionString]: CS, [V.endpoint]: "https://x", [V.iotHubHost]: HUB, [V.webPubSubHost]: WPS },
      ["not both"],
    ],
  ])("partial configuration %# is an error naming what is missing", (env, expected) => {
    const message = error(env);
    for (const e of expected) expect(message).toContain(e);
  });

  it.each([
    [{ [V.connectionString]: CS.replace("https:", "http:") }, "the Endpoint must be https://"],
    [{ [V.connectionString]: "Endpoint=https://x;SharedAccessKeyName=p" }, "missing SharedAccessKey"],
    [{ [V.endpoint]: "http://x.azurewebsites.net", [V.tokenScope]: "api://0/.default" }, "must be https://"],
    [
      { [V.connectionString]: CS, [V.webPubSubHost]: `ws://${WPS}` },
      `${V.webPubSubHost} must be a host name`,
    ],
    [{ [V.connectionString]: CS, [V.iotHubHost]: `${HUB}:8443` }, `${V.iotHubHost} must be a host name`],
  ])("malformed %# is an error naming the variable", (partial, expected) => {
    const message = error({ [V.iotHubHost]: HUB, [V.webPubSubHost]: WPS, ...partial });
    expect(message).toContain(expected);
    // A key never appears in a message.
    expect(message).not.toContain("a2V5a2V5");
  });

  it("DEVICESTREAMS_TARGET: local by default, live or loopback, anything else an error", () => {
    expect(targetKind({})).toBe("local");
    expect(targetKind({ DEVICESTREAMS_TARGET: "live" })).toBe("live");
    expect(targetKind({ DEVICESTREAMS_TARGET: "loopback" })).toBe("loopback");
    expect(() => targetKind({ DEVICESTREAMS_TARGET: "azure" })).toThrow(/local, live or loopback/);
  });
});
