import {
  LIMITS,
  billedMessagesPerFrame,
  directMethodChunks,
  renderCapacity,
  streamsPerSecondPerS1Unit,
  webPubSubUnit,
} from "../../bench/capacity";

describe("bench/capacity", () => {
  it("meters direct methods in 4 KB chunks, at least one", () => {
    expect(directMethodChunks(0)).toBe(1);
    expect(directMethodChunks(4096)).toBe(1);
    expect(directMethodChunks(4097)).toBe(2);
    expect(directMethodChunks(12 * 1024)).toBe(3);
  });

  it("gives about 40 new streams/s per S1 unit under 4 KB, half that just over", () => {
    expect(streamsPerSecondPerS1Unit(1500)).toBe(40);
    expect(streamsPerSecondPerS1Unit(5000)).toBe(20);
  });

  it("bills Web PubSub frames in 2 KB messages, rounding each frame up", () => {
    expect(billedMessagesPerFrame(64 * 1024)).toBe(32);
    expect(billedMessagesPerFrame(1)).toBe(1);
    expect(billedMessagesPerFrame(2049)).toBe(2);
  });

  it("computes a Web PubSub unit: 500 streams, MB/day from 1 M included messages", () => {
    const u = webPubSubUnit(64 * 1024);
    expect(u.streams).toBe(LIMITS.webPubSub.connectionsPerUnit / 2);
    // 64 KiB frames fill each 2,048-byte message, so 1 M messages carry 2,048 MB (10^6 bytes).
    expect(u.includedMBPerDay).toBeCloseTo(2048, 6);
    expect(u.includedMBPerSecond).toBeCloseTo(u.includedMBPerDay / 86400, 9);
    // 1 KiB frames waste half of each billed message.
    expect(webPubSubUnit(1024).includedMBPerDay).toBeCloseTo(1024, 6);
  });

  it("renders the measured payload first and the published limits side by side", () => {
    const md = renderCapacity(1234);
    expect(md).toContain("| 1234 B (measured, this code) | 1 | 40.0 |");
    expect(md).toContain("| 4097 B | 2 | 20.0 |");
    expect(md).toContain("| IoT Hub device streams (retired), per hub | 5 | 50 | 300 MB/day |");
    expect(md).toContain("800 kbps");
    expect(renderCapacity(undefined)).not.toContain("measured");
  });
});
