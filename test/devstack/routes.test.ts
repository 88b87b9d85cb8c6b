import { decodeSegment, RouteMatcher, RouteTemplateError } from "../../devstack/routes";

const defs = [
  { name: "health", methods: ["GET"], route: "health" },
  { name: "listStreams", methods: ["GET"], route: "devices/{deviceId}/streams" },
  { name: "createStream", methods: ["POST"], route: "devices/{deviceId}/streams" },
  { name: "closeAll", methods: ["DELETE"], route: "devices/{deviceId}/streams" },
  { name: "stream", methods: ["GET", "DELETE"], route: "devices/{deviceId}/streams/{streamId}" },
  { name: "moduleStreams", methods: ["GET", "POST"], route: "devices/{deviceId}/modules/{moduleId}/streams" },
  { name: "literalWins", methods: ["GET"], route: "devices/special/streams" },
  { name: "byNumber", methods: ["GET"], route: "items/{id:int}" },
  { name: "byGuid", methods: ["GET"], route: "items/{id:guid}" },
  { name: "byName", methods: ["GET"], route: "items/{name}" },
  { name: "optional", methods: ["GET"], route: "things/{a}/{b?}" },
  { name: "page", methods: ["GET"], route: "pages/{n:int?}" },
  { name: "files", methods: ["GET"], route: "files/{*path}" },
  { name: "relay", methods: ["POST", "OPTIONS"], route: "relay/events" },
];
const matcher = new RouteMatcher(defs, "api");

describe("RouteMatcher", () => {
  it.each([
    ["GET", "/api/health", "health", {}],
    ["GET", "/API/Health/", "health", {}],
    ["GET", "/api/devices/dev1/streams", "listStreams", { deviceId: "dev1" }],
    ["POST", "/api/devices/dev1/streams", "createStream", { deviceId: "dev1" }],
    ["post", "/api/DEVICES/dev1/Streams", "createStream", { deviceId: "dev1" }],
    ["DELETE", "/api/devices/dev1/streams", "closeAll", { deviceId: "dev1" }],
    [
      "GET",
      "/api/devices/MixedCase-Dev/streams/s-1",
      "stream",
      { deviceId: "MixedCase-Dev", streamId: "s-1" },
    ],
    ["GET", `/api/devices/${encodeURIComponent("a#b?c")}/streams`, "listStreams", { deviceId: "a#b?c" }],
    ["GET", `/api/devices/${encodeURIComponent("Dev%1")}/streams`, "listStreams", { deviceId: "Dev%1" }],
    ["GET", "/api/devices/Dev%1/streams", "listStreams", { deviceId: "Dev%1" }],
    ["GET", "/api/devices/a+b/streams", "listStreams", { deviceId: "a+b" }],
    [
      "GET",
      `/api/devices/${encodeURIComponent("x'(),=@$!*:%#?+y")}/streams`,
      "listStreams",
      { deviceId: "x'(),=@$!*:%#?+y" },
    ],
    ["GET", "/api/devices/%C3%BC/streams", "listStreams", { deviceId: "ü" }],
    ["POST", "/api/devices/d/modules/m%231/streams", "moduleStreams", { deviceId: "d", moduleId: "m#1" }],
    ["GET", "/api/devices/special/streams", "literalWins", {}],
    ["GET", "/api/devices/SPECIAL/streams", "literalWins", {}],
    ["GET", "/api/items/42", "byNumber", { id: "42" }],
    ["GET", "/api/items/99999999999", "byName", { name: "99999999999" }],
    [
      "GET",
      "/api/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
      "byGuid",
      { id: "3f2504e0-4f89-11d3-9a0c-0305e82c3301" },
    ],
    ["GET", "/api/items/abc", "byName", { name: "abc" }],
    ["GET", "/api/pages", "page", {}],
    ["GET", "/api/pages/7", "page", { n: "7" }],
    ["GET", "/api/things/x", "optional", { a: "x" }],
    ["GET", "/api/things/x/y", "optional", { a: "x", b: "y" }],
    ["GET", "/api/files", "files", {}],
    ["GET", "/api/files/a/b%2Fc/d", "files", { path: "a/b/c/d" }],
    ["OPTIONS", "/api/relay/events", "relay", {}],
    ["GET", "/api/x/../devices/dev1/./streams", "listStreams", { deviceId: "dev1" }],
  ])("%s %s → %s %j", (method, path, name, params) => {
    expect(matcher.match(method, path)).toEqual({
      kind: "found",
      def: expect.objectContaining({ name }),
      params,
    });
  });

  it.each([
    ["GET", "/health"],
    ["GET", "/api"],
    ["GET", "/api/nothing"],
    ["GET", "/api/devices//streams"],
    ["GET", "/api/devices/d/streams/s/extra"],
    ["GET", "/api/things"],
    ["GET", "/api/pages/seven"],
    ["GET", "/apix/health"],
    ["GET", "/api/devices/../streams"],
  ])("%s %s is not found", (method, path) => {
    expect(matcher.match(method, path)).toEqual({ kind: "notFound" });
  });

  it.each([
    ["PUT", "/api/devices/d/streams"],
    ["POST", "/api/devices/d/streams/s"],
    ["GET", "/api/relay/events"],
    ["HEAD", "/api/health"],
    ["HEAD", "/api/devices/d/streams"],
  ])(
    "%s %s, a method the route does not list, is not found (no 405 on the Functions host)",
    (method, path) => {
      expect(matcher.match(method, path)).toEqual({ kind: "notFound" });
    },
  );

  describe("decode before route", () => {
    const decoding = { decodeBeforeRoute: true };
    it.each([
      // %2F becomes a separator, so the path has one segment more and routes elsewhere or nowhere.
      ["GET", "/api/devices/a%2Fb/streams", "notFound", undefined],
      ["GET", "/api/files/a%2Fb", "found", { path: "a/b" }],
      // One decode only: %2525 reaches the handler as %25, not as %.
      ["GET", "/api/devices/a%2525/streams", "found", { deviceId: "a%25" }],
      ["GET", "/api/devices/a%23b%3Fc/streams", "found", { deviceId: "a#b?c" }],
      ["GET", "/api/%64evices/d/streams", "found", { deviceId: "d" }],
      // Dot segments are removed after decoding, as Kestrel does: %2E%2E climbs.
      ["GET", "/api/devices/%2E%2E/streams", "notFound", undefined],
      ["GET", "/api/devices/d/streams/%2e%2e/streams", "found", { deviceId: "d" }],
      ["GET", "/api/devices/d/./streams", "found", { deviceId: "d" }],
      // Base64url has nothing to decode: the segment arrives as sent, case kept.
      ["GET", "/api/devices/Li4/streams", "found", { deviceId: "Li4" }],
      ["POST", "/api/devices/Li4/modules/JTJGLi4/streams", "found", { deviceId: "Li4", moduleId: "JTJGLi4" }],
    ])("%s %s is %s %j", (method, path, kind, params) => {
      const match = matcher.match(method, path, decoding);
      expect(match.kind).toBe(kind);
      if (match.kind === "found") expect(match.params).toEqual(params);
    });

    it("differs from decoding after the split exactly where an escape is a separator", () => {
      expect(matcher.match("GET", "/api/devices/a%2Fb/streams")).toMatchObject({
        kind: "found",
        params: { deviceId: "a/b" },
      });
      expect(matcher.match("GET", "/api/devices/a%2Fb/streams", decoding)).toEqual({ kind: "notFound" });
    });
  });

  it("serves an empty route prefix", () => {
    const bare = new RouteMatcher([{ name: "h", methods: ["GET"], route: "health" }], "");
    expect(bare.match("GET", "/health").kind).toBe("found");
    expect(bare.match("GET", "/api/health").kind).toBe("notFound");
  });

  it.each([
    ["a/{b}.{c}", /unsupported segment/],
    ["a/{b?}/c", /optional .* must be the last/],
    ["a/{*b}/c", /catch-all .* must be the last/],
    ["a/{b:regex}", /unsupported constraint 'regex'/],
    ["a/{b:constructor}", /unsupported constraint 'constructor'/],
    ["a/{b}/{B}", /parameter 'b' repeats/],
  ])("rejects the template %s at startup", (route, message) => {
    expect(() => new RouteMatcher([{ name: "f", methods: ["GET"], route }], "api")).toThrow(
      RouteTemplateError,
    );
    expect(() => new RouteMatcher([{ name: "f", methods: ["GET"], route }], "api")).toThrow(message);
  });

  it("rejects two functions on the same method and template shape", () => {
    const clash = [
      { name: "one", methods: ["GET"], route: "devices/{id}" },
      { name: "two", methods: ["POST", "GET"], route: "Devices/{deviceId}" },
    ];
    expect(() => new RouteMatcher(clash, "api")).toThrow(
      /'one' and 'two' both serve GET Devices\/\{deviceId\}/,
    );
  });

  it.each([
    ["a%2Fb", "a/b"],
    ["100%", "100%"],
    ["%E0%A4%A", "%E0%A4%A"],
    ["ok%20%zz", "ok %zz"],
  ])("decodes %p leniently as %p", (raw, decoded) => {
    expect(decodeSegment(raw)).toBe(decoded);
  });
});
