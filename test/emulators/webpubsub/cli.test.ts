import { parseCli } from "../../../emulators/webpubsub/cli";
import { WELL_KNOWN_ACCESS_KEY } from "../../../emulators/webpubsub";

describe("webpubsub-emulator arguments", () => {
  it.each<[string, string[], unknown]>([
    ["defaults", [], { port: 8080, host: "127.0.0.1", accessKey: WELL_KNOWN_ACCESS_KEY, eventHandlers: {} }],
    ["port and host", ["--port", "0", "--host", "0.0.0.0"], { port: 0, host: "0.0.0.0" }],
    ["access key", ["--access-key", "k1"], { accessKey: "k1" }],
    [
      "repeated event handlers with placeholders",
      [
        "--event-handler",
        "relay=http://localhost:7071/api/relay/events",
        "--event-handler",
        "chat=http://h/{hub}/{event}?a=b",
      ],
      {
        eventHandlers: {
          relay: "http://localhost:7071/api/relay/events",
          chat: "http://h/{hub}/{event}?a=b",
        },
      },
    ],
    [
      "an = inside the URL",
      ["--event-handler", "h=http://x/?q=1"],
      { eventHandlers: { h: "http://x/?q=1" } },
    ],
  ])("parses %s", (_name, argv, expected) => {
    const result = parseCli(argv);
    expect(result.kind).toBe("run");
    expect(result.kind === "run" && result.options).toMatchObject(expected as object);
  });

  it.each<[string, string[], RegExp]>([
    ["a non-numeric port", ["--port", "http"], /--port.*integer/],
    ["a port out of range", ["--port", "70000"], /integer/],
    ["a handler without =", ["--event-handler", "relay"], /<hub>=<urlTemplate>/],
    ["a handler with a bad hub", ["--event-handler", "1hub=http://x"], /invalid hub name/],
    ["a handler that is not a URL", ["--event-handler", "h=not a url"], /not an http\(s\) URL/],
    ["a handler with another scheme", ["--event-handler", "h=ftp://x"], /not an http\(s\) URL/],
    [
      "two handlers for one hub",
      ["--event-handler", "h=http://a", "--event-handler", "H=http://b"],
      /more than one/,
    ],
    ["an unknown option", ["--nope"], /unknown option/],
    ["a stray argument", ["extra"], /too many arguments/],
  ])("refuses %s", (_name, argv, message) => {
    const result = parseCli(argv);
    expect(result).toMatchObject({ kind: "exit", code: 1 });
    expect(result.kind === "exit" && result.output).toMatch(message);
  });

  it("prints help with exit code 0", () => {
    expect(parseCli(["--help"])).toMatchObject({
      kind: "exit",
      code: 0,
      output: expect.stringContaining("--event-handler"),
    });
  });
});
