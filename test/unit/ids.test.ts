import { ID_SPECIAL_CHARACTERS, decodeIdSegment, encodeIdSegment, isLegalId } from "../../common/ids";

/** Every special character IoT Hub allows, one ID each, plus the ones that used to change paths. */
const SPECIALS = [...ID_SPECIAL_CHARACTERS].map((c) => `id${c}x`);
const PATH_CHANGERS = [".", "..", "%", "%2F", "%2e%2e", "#", "?", ";", "a..b"];

describe("common/ids: the ID transport", () => {
  it("is IoT Hub's documented alphabet, ';' '#' and '+' included", () => {
    expect([...ID_SPECIAL_CHARACTERS].sort().join("")).toBe([..."-:.+%_#*?!(),=@;$'"].sort().join(""));
    for (const id of [...SPECIALS, ...PATH_CHANGERS, "Demo-Device-01", "x".repeat(128)]) {
      expect(isLegalId(id)).toBe(true);
    }
    for (const id of ["", "x".repeat(129), "a/b", "a b", "ü", "a\\b", "a^b", "a[b]", "a\nb", "a&b", "a~b"]) {
      expect(isLegalId(id)).toBe(false);
    }
  });

  it("encodes as unpadded base64url of the UTF-8 bytes (the example in docs/decisions.md)", () => {
    expect(encodeIdSegment("Demo-Device-01")).toBe("RGVtby1EZXZpY2UtMDE");
    expect(encodeIdSegment("..")).toBe("Li4");
    expect(encodeIdSegment("?>")).toBe("Pz4");
    expect(encodeIdSegment("??>")).toBe("Pz8-");
  });

  it.each([...SPECIALS, ...PATH_CHANGERS, "x".repeat(128), "A", "ab", "abc"])(
    "round-trips %p through a segment of base64url characters only",
    (id) => {
      const segment = encodeIdSegment(id);
      expect(segment).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeURIComponent(segment)).toBe(segment);
      expect(decodeIdSegment(segment)).toEqual({ ok: true, id });
    },
  );

  it.each([
    ["padding", "Li4="],
    ["standard base64's '+'", "Pz8+"],
    ["standard base64's '/'", "Pz8/"],
    ["a percent escape", "Li4%3D"],
    ["a dangling character", "Li4AB"],
    ["non-zero unused bits", "Li5"],
    ["an empty segment", ""],
    ["a segment too long for 128 characters", encodeIdSegment("x".repeat(129))],
  ])("refuses %s as not canonical", (_what, segment) => {
    expect(decodeIdSegment(segment)).toEqual({
      ok: false,
      problem: expect.stringMatching(/canonical base64url/),
    });
  });

  it.each([
    ["a slash", "a/b"],
    ["a space", "a b"],
    ["a non-ASCII letter", "ü"],
    ["a control character", "a\u0000b"],
  ])("refuses a segment that decodes to an ID with %s", (_what, id) => {
    expect(decodeIdSegment(encodeIdSegment(id))).toEqual({
      ok: false,
      problem: expect.stringMatching(/^must decode to 1-128/),
    });
  });
});
