/**
 * CRC-32 (ISO-HDLC, zlib's) of the frame checksum. Node's native `zlib.crc32` exists from Node
 * 20.15 / 22.2 on; on older runtimes (Debian 12's Node 18, docs/device-install.md) the same
 * checksum comes from the pure-JavaScript `crc-32` package, so frames stay byte-identical.
 */
import * as zlib from "node:zlib";
import { buf as crc32Js } from "crc-32";

export type Crc32 = (data: Uint8Array) => number;

/** `crc-32` returns a signed 32-bit value; frames carry the unsigned one, as zlib returns it. */
export const portableCrc32: Crc32 = (data) => crc32Js(data) >>> 0;

const native = (zlib as unknown as { crc32?: Crc32 }).crc32;

/** The native implementation when the runtime has one, else the portable one. */
export const crc32: Crc32 = typeof native === "function" ? native : portableCrc32;
