import { parseBenchArgs } from "../../bench/run";

const SUITES = ["streams", "tunnel"];

describe("npm run bench arguments", () => {
  it.each([
    [[], { help: false, quick: false }],
    [["--quick"], { help: false, quick: true }],
    [["--only", "streams"], { help: false, quick: false, only: "streams" }],
    [["--quick", "--only=tunnel"], { help: false, quick: true, only: "tunnel" }],
    [["--help"], { help: true }],
    [["-h"], { help: true }],
  ])("%j", (argv, expected) => {
    expect(parseBenchArgs(argv, SUITES)).toEqual(expected);
  });

  it.each([
    [["--fast"], /Unknown option '--fast'[\s\S]*usage: npm run bench/],
    [["streams"], /Unexpected argument 'streams'[\s\S]*usage/],
    [["--only"], /--only.*argument missing[\s\S]*usage/],
    [["--only", "stream"], /--only stream: no such suite; the suites are streams, tunnel/],
  ])("refuses %j before anything runs", (argv, message) => {
    expect(() => parseBenchArgs(argv, SUITES)).toThrow(message);
  });
});
