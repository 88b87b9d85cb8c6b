import { escapeControl, safeJson } from "../../common/text";

describe("escapeControl", () => {
  it.each([
    ["OSC 52 clipboard write", "\x1b]52;c;SGVsbG8=\x07", "\\u001b]52;c;SGVsbG8=\\u0007"],
    ["CSI", "\x1b[2J\x1b[31mred", "\\u001b[2J\\u001b[31mred"],
    ["C1 CSI and DEL", "\u009b31m\x7f", "\\u009b31m\\u007f"],
    ["a forged line", "ok\nforged\r", "ok\\u000aforged\\u000d"],
    ["bidi override", "abc\u202edcba\u2066", "abc\\u202edcba\\u2066"],
    ["plain text and other Unicode", "héllo ✓ 日本", "héllo ✓ 日本"],
  ])("%s", (_what, text, shown) => expect(escapeControl(text)).toBe(shown));
});

describe("safeJson", () => {
  it("is exact JSON with no raw control character, C1 and DEL included", () => {
    const value = { reason: "\x1b]52;c;x\x07\u009b1m\x7f\u2028", n: 1, nested: ["\x00"] };
    const text = safeJson(value, 2);
    expect(JSON.parse(text)).toEqual(value);
    // eslint-disable-next-line no-control-regex -- what must never reach a terminal
    expect(text.replace(/\n/g, "")).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028]/);
  });
});
