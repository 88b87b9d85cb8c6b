import { decodeKey, encodeKey } from "../../shared/store/keys";

// eslint-disable-next-line no-control-regex -- the control characters are exactly what Table keys forbid
const FORBIDDEN = /[/\\#?\u0000-\u001f\u007f-\u009f]/;

describe("table key encoding", () => {
  it.each([
    ["plain-Device_1.a", "plain-Device_1.a"],
    ["dev#1?x", "dev~231~3Fx"],
    ["a/b\\c", "a~2Fb~5Cc"],
    ["tilde~", "tilde~7E"],
    ["ü", "~C3~BC"],
  ])("encodes %p as %p", (raw, encoded) => {
    expect(encodeKey(raw)).toBe(encoded);
    expect(decodeKey(encoded)).toBe(raw);
  });

  it("round-trips every IoT Hub id character and never emits a forbidden one", () => {
    const chars = "-:.+%_#*?!(),=@$'/\\\u0001 ~AZaz09€";
    for (const a of chars) {
      for (const b of chars) {
        const id = `${a}x${b}`;
        const enc = encodeKey(id);
        expect(FORBIDDEN.test(enc)).toBe(false);
        expect(decodeKey(enc)).toBe(id);
      }
    }
  });

  it("is injective where a naive escaping is not", () => {
    expect(encodeKey("~23")).not.toBe(encodeKey("#"));
  });

  it("rejects a malformed escape", () => {
    expect(() => decodeKey("~Z1")).toThrow(/invalid escape/);
  });
});
