import { describeRunning, parseIotHubEmulatorArgs } from "../../../emulators/iothub/cli";

const defaults = {
  host: "127.0.0.1",
  mqttPort: 8883,
  httpsPort: 8443,
  hubName: "devicestreams",
  stateDir: ".iothub-emulator",
};

test.each([
  [[], defaults],
  [["--mqtt-port", "0", "--https-port", "0"], { ...defaults, mqttPort: 0, httpsPort: 0 }],
  [["--host", "0.0.0.0", "--hub-name", "my-hub"], { ...defaults, host: "0.0.0.0", hubName: "my-hub" }],
  [["--state-dir", "/tmp/x"], { ...defaults, stateDir: "/tmp/x" }],
  [["--method-rate-limit", "2.5"], { ...defaults, methodRateLimitPerSecond: 2.5 }],
  [["--mqtt-port=1883"], { ...defaults, mqttPort: 1883 }],
])("%j runs with %j", (argv, options) => {
  expect(parseIotHubEmulatorArgs(argv)).toEqual({ kind: "run", options });
});

test.each([
  [["--mqtt-port", "70000"], /port number/],
  [["--https-port", "x"], /port number/],
  [["--mqtt-port", "-1"], /port number/],
  [["--hub-name", "a"], /3-50 letters/],
  [["--hub-name", "bad_name!"], /3-50 letters/],
  [["--method-rate-limit", "0"], /positive number/],
  [["--host", ""], /must not be empty/],
  [["--bogus"], /unknown option/],
  [["extra"], /too many arguments|unexpected|excess/i],
])("%j exits with an error", (argv, message) => {
  const result = parseIotHubEmulatorArgs(argv);
  expect(result.kind).toBe("exit");
  if (result.kind === "exit") {
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(message);
  }
});

test("--help exits 0 with the usage", () => {
  const result = parseIotHubEmulatorArgs(["--help"]);
  expect(result).toMatchObject({ kind: "exit", code: 0 });
  if (result.kind === "exit") expect(result.output).toMatch(/--mqtt-port <port>/);
});

test("the banner says how to trust the CA and carries no key", () => {
  const text = describeRunning({
    hubName: "h",
    hubHostName: "h.azure-devices.net",
    mqttUrl: "mqtts://127.0.0.1:8883",
    httpsUrl: "https://127.0.0.1:8443",
    stateDir: "/s",
    caPath: "/s/ca.crt",
    serviceConnectionStringPath: "/s/service-connection-string.txt",
  });
  expect(text).toContain("NODE_EXTRA_CA_CERTS=/s/ca.crt");
  expect(text).toMatch(/"ca" option/);
  expect(text).not.toMatch(/SharedAccessKey=/);
});
