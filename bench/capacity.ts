/**
 * Azure capacity per service unit, computed from published limits (the shared reference docs
 * azure-limits.md and landscape.md, as stored in late 2026). Pure: docs/performance.md's capacity
 * table is generated from this module and a test checks the doc still matches it.
 */

/** Published figures this module computes from. Re-check before quoting them to users. */
export const LIMITS = {
  iotHub: {
    /** Direct methods are metered in 4 KB chunks. */
    directMethodChunkBytes: 4 * 1024,
    /** S1: about 160 KB/s of direct-method traffic per unit (≈ 40 calls/s under 4 KB). */
    s1DirectMethodBytesPerSecond: 160 * 1024,
  },
  webPubSub: {
    /** Outbound traffic is billed in 2 KB messages. */
    billingMessageBytes: 2 * 1024,
    /** Included per unit per day; more is billed as overage. */
    includedMessagesPerUnitPerDay: 1_000_000,
    /** Concurrent connections per Standard/Premium unit. */
    connectionsPerUnit: 1000,
    /** Each stream holds two relay connections: service and device. */
    connectionsPerStream: 2,
  },
  /** IoT Hub device streams (retired): per hub, all non-Basic tiers. */
  iotHubDeviceStreams: { newPerSecond: 5, concurrent: 50, bytesPerDay: 300 * 1000 * 1000 },
  /** AWS IoT secure tunneling: 800 kbps per tunnel (older doc; newer: 800 KB/s per account). */
  awsSecureTunneling: { bitsPerSecondPerTunnel: 800_000, connectionsPerSecond: 10 },
} as const;

/** The bench row (bench/suites/streams.ts) whose value is the measured direct-method payload. */
export const DIRECT_METHOD_PAYLOAD_ROW = "direct-method request payload, largest seen";

const DAY = 24 * 60 * 60;

/** Direct-method chunks one stream request costs: payload rounded up to 4 KB, at least one. */
export function directMethodChunks(payloadBytes: number): number {
  return Math.max(1, Math.ceil(payloadBytes / LIMITS.iotHub.directMethodChunkBytes));
}

/** New streams per second one S1 unit sustains, given the direct method's request payload. */
export function streamsPerSecondPerS1Unit(payloadBytes: number): number {
  const chunksPerSecond = LIMITS.iotHub.s1DirectMethodBytesPerSecond / LIMITS.iotHub.directMethodChunkBytes;
  return chunksPerSecond / directMethodChunks(payloadBytes);
}

/** Billed Web PubSub messages for one relayed frame of `frameBytes` (each frame rounds up). */
export function billedMessagesPerFrame(frameBytes: number): number {
  return Math.max(1, Math.ceil(frameBytes / LIMITS.webPubSub.billingMessageBytes));
}

export interface WebPubSubUnitCapacity {
  /** Concurrent streams one unit holds (connections / 2). */
  streams: number;
  /** Billed messages per MB of tunnel payload at this frame size. */
  messagesPerMB: number;
  /** Tunnel payload MB/day covered by one unit's included messages. */
  includedMBPerDay: number;
  /** The same as an average rate, MB/s; not a throughput ceiling (see the routing caveat). */
  includedMBPerSecond: number;
}

/** MB = 10^6 bytes, as Azure bills. Each payload byte is relayed (billed outbound) once. */
export function webPubSubUnit(frameBytes: number): WebPubSubUnitCapacity {
  const w = LIMITS.webPubSub;
  const messagesPerMB = (1e6 / frameBytes) * billedMessagesPerFrame(frameBytes);
  const includedMBPerDay = w.includedMessagesPerUnitPerDay / messagesPerMB;
  return {
    streams: Math.floor(w.connectionsPerUnit / w.connectionsPerStream),
    messagesPerMB,
    includedMBPerDay,
    includedMBPerSecond: includedMBPerDay / DAY,
  };
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  if (n >= 100) return Math.round(n).toLocaleString("en-US");
  if (n >= 1) return n.toFixed(1);
  return n.toPrecision(2);
}

/**
 * The capacity section of docs/performance.md: Markdown, deterministic for given inputs.
 * `measuredPayloadBytes` is the direct-method payload size the last bench run saw, if any.
 */
export function renderCapacity(measuredPayloadBytes: number | undefined, frameBytes = 64 * 1024): string {
  const sizes = [1024, 4096, 4097, 8192];
  const payloads = measuredPayloadBytes !== undefined ? [measuredPayloadBytes, ...sizes] : sizes;
  const lines: string[] = [];
  lines.push("#### IoT Hub: new streams/s per S1 unit, by direct-method payload");
  lines.push("");
  lines.push("| payload | 4 KB chunks | streams/s per S1 unit | streams/day per S1 unit |");
  lines.push("|---|---|---|---|");
  for (const p of payloads) {
    const label = p === measuredPayloadBytes ? `${p} B (measured, this code)` : `${p} B`;
    const s = streamsPerSecondPerS1Unit(p);
    lines.push(`| ${label} | ${directMethodChunks(p)} | ${fmt(s)} | ${fmt(s * DAY)} |`);
  }
  lines.push("");
  lines.push(`#### Web PubSub: per Standard unit, ${frameBytes / 1024} KiB tunnel frames and 1 KiB frames`);
  lines.push("");
  const included = LIMITS.webPubSub.includedMessagesPerUnitPerDay;
  lines.push(
    `| frame | billed messages per frame | billed messages per MB | concurrent streams | MB/day in the ${fmt(included)} included messages | average MB/s included |`,
  );
  lines.push("|---|---|---|---|---|---|");
  for (const f of [frameBytes, 1024]) {
    const u = webPubSubUnit(f);
    lines.push(
      `| ${f} B | ${billedMessagesPerFrame(f)} | ${fmt(u.messagesPerMB)} | ${u.streams} | ${fmt(u.includedMBPerDay)} | ${fmt(u.includedMBPerSecond)} |`,
    );
  }
  lines.push("");
  lines.push("#### Side by side, per stream and per hub/unit");
  lines.push("");
  const d = LIMITS.iotHubDeviceStreams;
  const a = LIMITS.awsSecureTunneling;
  const ours = measuredPayloadBytes ?? 4096;
  lines.push("| | new streams/s | concurrent streams | data | per-stream rate |");
  lines.push("|---|---|---|---|---|");
  lines.push(
    `| IoT Hub device streams (retired), per hub | ${d.newPerSecond} | ${d.concurrent} | ${d.bytesPerDay / 1e6} MB/day | not published |`,
  );
  lines.push(
    `| AWS IoT secure tunneling | ${a.connectionsPerSecond} (connection TPS) | per account quota | not published here | ${a.bitsPerSecondPerTunnel / 1000} kbps (${fmt(a.bitsPerSecondPerTunnel / 8 / 1e6)} MB/s) |`,
  );
  lines.push(
    `| device-streams, per S1 IoT Hub unit + Standard Web PubSub unit | ${fmt(streamsPerSecondPerS1Unit(ours))} per S1 unit, scales with units | ${webPubSubUnit(frameBytes).streams} per unit, scales with units | ${fmt(webPubSubUnit(frameBytes).includedMBPerDay)} MB/day included per unit, then overage | no quota; bounded by units ("send to small group" routing cost) |`,
  );
  return lines.join("\n");
}
