import { functionsLogHandler } from "../../devstack/log";
import { createLogger } from "../../shared/log";

describe("createLogger", () => {
  it("writes one JSON object per line at or above the minimum level", () => {
    const lines: string[] = [];
    const logger = createLogger({ write: (line) => lines.push(line), minLevel: "info" });
    logger.log("debug", "hidden");
    logger.log("info", "request", { method: "GET", status: 200 });
    logger.log("error", "boom");
    expect(lines).toHaveLength(2);
    expect(lines.every((line) => line.endsWith("\n") && !line.slice(0, -1).includes("\n"))).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({
      time: expect.any(String),
      level: "info",
      msg: "request",
      method: "GET",
      status: 200,
    });
  });

  it("escapes every control character a device or a caller put in a message or a field: the line stays exact JSON", () => {
    const lines: string[] = [];
    const hostile = "\x1b]52;c;SGVsbG8=\x07\x1b[2J\u009b31m\x7f\nforged";
    createLogger({ write: (l) => lines.push(l) }).log("warn", `refused: ${hostile}`, { reason: hostile });
    expect(lines[0]).toContain("\\u001b]52;c;SGVsbG8=\\u0007\\u001b[2J\\u009b31m\\u007f\\nforged");
    // eslint-disable-next-line no-control-regex -- what must never reach a log viewer
    expect(lines[0]!.slice(0, -1)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: `refused: ${hostile}`, reason: hostile });
  });

  it("redacts fields that may hold secrets", () => {
    const lines: string[] = [];
    createLogger({ write: (l) => lines.push(l) }).log("info", "x", {
      token: "t0p",
      accessKey: "k",
      deviceId: "d",
    });
    expect(JSON.parse(lines[0]!)).toMatchObject({
      token: "[redacted]",
      accessKey: "[redacted]",
      deviceId: "d",
    });
  });

  it("maps Functions log levels and formats arguments like console.log", () => {
    const lines: string[] = [];
    const handler = functionsLogHandler(createLogger({ write: (l) => lines.push(l), minLevel: "debug" }), {
      function: "f",
    });
    handler("information", "count %d of", 3, { a: 1 });
    handler("critical", "down");
    handler("trace", "fine");
    handler("none", "never");
    expect(lines.map((l) => JSON.parse(l) as { level: string; msg: string; function: string })).toEqual([
      expect.objectContaining({ level: "info", msg: "count 3 of { a: 1 }", function: "f" }),
      expect.objectContaining({ level: "error", msg: "down" }),
      expect.objectContaining({ level: "debug", msg: "fine" }),
    ]);
  });
});
