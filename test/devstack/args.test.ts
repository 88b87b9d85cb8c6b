import { DEFAULT_OPTIONS, parseDevStackArgs } from "../../devstack/args";

describe("parseDevStackArgs", () => {
  it.each([
    [[], {}],
    [["--no-demo"], { demo: false }],
    [["--port", "0"], { port: 0 }],
    [["--port=8081"], { port: 8081 }],
    [["--table-port", "20002", "--port", "7072"], { tablePort: 20002, port: 7072 }],
    [["--host", "0.0.0.0"], { host: "0.0.0.0" }],
    [["--state-dir", "/tmp/x"], { stateDir: "/tmp/x" }],
    [["--port", "0", "--table-port", "0"], { port: 0, tablePort: 0 }],
    [
      ["--webpubsub-port", "18080", "--mqtt-port", "18883", "--iothub-port", "18443"],
      { webPubSubPort: 18080, mqttPort: 18883, iotHubPort: 18443 },
    ],
    [
      ["--demo-ssh-port", "2222", "--demo-forward-port", "9090"],
      { demoSshPort: 2222, demoForwardPort: 9090 },
    ],
    [["--demo-gateway-port", "9091"], { demoGatewayPort: 9091 }],
    [["-h"], { help: true }],
    [["--help", "--no-demo"], { help: true, demo: false }],
  ])("%j → %j", (argv, changes) => {
    expect(parseDevStackArgs(argv)).toEqual({ ok: true, options: { ...DEFAULT_OPTIONS, ...changes } });
  });

  it("defaults to port 7071, table port 10002, state in .devstack, demo on", () => {
    expect(DEFAULT_OPTIONS).toEqual({
      demo: true,
      host: "127.0.0.1",
      port: 7071,
      tablePort: 10002,
      webPubSubPort: 8080,
      mqttPort: 8883,
      iotHubPort: 8443,
      stateDir: ".devstack",
      demoSshPort: 22,
      demoForwardPort: 8081,
      demoGatewayPort: 8090,
      app: "",
      keyless: false,
      help: false,
    });
  });

  it("--keyless selects the Azure-mode stack; SAS local mode stays the default", () => {
    const parsed = parseDevStackArgs(["--keyless"]);
    expect(parsed.ok && parsed.options.keyless).toBe(true);
    const plain = parseDevStackArgs([]);
    expect(plain.ok && plain.options.keyless).toBe(false);
  });

  it("--app names the function app to serve (e.g. the packed artifact)", () => {
    const parsed = parseDevStackArgs(["--app", ".deploy/api"]);
    expect(parsed.ok && parsed.options.app).toBe(".deploy/api");
  });

  it.each([
    [["--port", "http"], /--port must be a port number 0-65535, got 'http'/],
    [["--port", "70000"], /--port must be a port number/],
    [["--port", "-1"], /--port/],
    [["--table-port", "1.5"], /--table-port must be a port number/],
    [["--port", "9000", "--table-port", "9000"], /--port and --table-port are both 9000/],
    [["--webpubsub-port", "7071"], /--port and --webpubsub-port are both 7071/],
    [["--mqtt-port", "x"], /--mqtt-port must be a port number/],
    [["--demo-ssh-port", "ssh"], /--demo-ssh-port must be a port number/],
    [["--demo-gateway-port", "99999"], /--demo-gateway-port must be a port number/],
    [["--port"], /--port/],
    [["--host", ""], /--host must not be empty/],
    [["--state-dir", " "], /--state-dir must not be empty/],
    [["--demo-off"], /Unknown option '--demo-off'/],
    [["extra"], /positional argument/],
  ])("%j is refused with a clear message", (argv, message) => {
    const parsed = parseDevStackArgs(argv);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(message);
  });
});
