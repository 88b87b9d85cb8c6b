/**
 * Table Storage forbids `/ \ # ?` and control characters in PartitionKey/RowKey, and IoT Hub
 * IDs may contain `#` and `?`. Keys are therefore escaped: `[A-Za-z0-9._-]` stay readable,
 * every other UTF-8 byte becomes `~XX`. The escape character is itself escaped, so the
 * mapping is injective and `decodeKey(encodeKey(x)) === x` for every string.
 */
const SAFE = /^[A-Za-z0-9._-]$/;

export function encodeKey(value: string): string {
  let out = "";
  for (const ch of value) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, "utf8")) {
      out += "~" + byte.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

export function decodeKey(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const ch = encoded[i]!;
    if (ch === "~") {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new Error(`invalid escape at ${i} in table key`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(ch.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}
