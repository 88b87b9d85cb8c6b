/** Seeded random input for fuzz tests: a failure reproduces from its seed. */

/** mulberry32. */
export function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Alphabets a hostile peer reaches for: separators, controls, quotes, unicode, look-alikes. */
const ALPHABETS: readonly string[][] = [
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
  "-_.:;=,+%#?!()*@$'",
  "\u0000\u0001\r\n\t\u001b\u007f",
  ' "\\/[]{}<>',
  "üé€💥İıſK\u2028\u202e\u0130",
  "xn--",
].map((alphabet) => [...alphabet]);

export function junkGenerator(seed: number) {
  const random = rng(seed);
  const int = (max: number) => Math.floor(random() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  // Strings are slices of one junk text, so thousands of cases cost little.
  let pool = "";
  for (let i = 0; i < 20_000; i++) pool += pick(pick(ALPHABETS));
  const string = (maxLength = 80): string => {
    const length = pick([0, 1, 2, 8, 30, maxLength]);
    const start = int(pool.length - length);
    return pool.slice(start, start + length);
  };
  return { random, int, pick, string };
}
