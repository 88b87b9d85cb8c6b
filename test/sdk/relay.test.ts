import { checkRelayUrl } from "../../shared/sdk/relay";
import { proxyAgentFor } from "../../shared/sdk/relay/proxy";

describe("relay URL policy", () => {
  const policy = { allowedHosts: ["relay.example.com", "*.webpubsub.azure.com", "127.0.0.1:8080"] };
  it.each([
    ["wss://relay.example.com/client/hubs/streams", policy, true],
    ["wss://RELAY.example.com/x", policy, true],
    ["wss://mine.webpubsub.azure.com/client", policy, true],
    ["wss://webpubsub.azure.com/client", policy, false],
    ["wss://evil.com/?h=relay.example.com", policy, false],
    ["wss://relay.example.com.evil.com/", policy, false],
    ["ws://relay.example.com/", policy, false],
    ["ws://127.0.0.1:8080/client", { ...policy, allowInsecure: true }, true],
    ["ws://127.0.0.1:9090/client", { ...policy, allowInsecure: true }, false],
    ["https://relay.example.com/", policy, false],
    ["wss://user:pw@relay.example.com/", policy, false],
    ["not a url", policy, false],
  ])("%s", (url, p, ok) => expect(checkRelayUrl(url, p).ok).toBe(ok));

  it("never repeats the query string in its reason", () => {
    const check = checkRelayUrl("wss://evil.com/client?access_token=SECRET", policy);
    expect(check).toMatchObject({ ok: false });
    expect(JSON.stringify(check)).not.toContain("SECRET");
  });

  it("uses HTTPS_PROXY unless NO_PROXY matches", () => {
    const url = new URL("wss://relay.example.com/");
    expect(proxyAgentFor(url, {})).toBeUndefined();
    expect(proxyAgentFor(url, { HTTPS_PROXY: "http://proxy:3128" })).toBeDefined();
    expect(
      proxyAgentFor(url, { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: ".example.com" }),
    ).toBeUndefined();
    expect(proxyAgentFor(url, { https_proxy: "http://proxy:3128", no_proxy: "other.com" })).toBeDefined();
  });
});
