import { argumentSafeId, isStreamId, newStreamId } from "../../shared/streams/model";

describe("stream ids", () => {
  it("never start with '-', which a command line would read as an option", () => {
    expect(argumentSafeId("-bcdefghijklmnopqrstuv")).toBe("Abcdefghijklmnopqrstuv");
    expect(argumentSafeId("_bcdefghijklmnopqrstuv")).toBe("_bcdefghijklmnopqrstuv");
    expect(argumentSafeId("abc-")).toBe("abc-");
    // Unfixed, about 1 in 64 of these would start with "-": 5,000 of them cannot all miss by chance.
    const ids = Array.from({ length: 5000 }, newStreamId);
    expect(ids.filter((id) => id.startsWith("-"))).toEqual([]);
    expect(ids.every(isStreamId)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
