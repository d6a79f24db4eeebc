// CRC-32C (Castagnoli), as PostgreSQL's pg_crc32c: reflected polynomial
// 0x82F63B78, init and final xor 0xFFFFFFFF.
// Long inputs (full-page images) go to @node-rs/crc32 when it loads: the SSE4.2 /
// ARMv8 CRC instructions, 3-5x our JS on 8-64 KiB, prebuilt binaries as optional
// dependencies, so nothing compiles at install. Each call into it costs ~0.15 us,
// so short inputs (most records, every record header) stay in JS: slicing-by-8/16
// tables (16 KiB, fits L1), no allocation. Records are checked through a 32-bit word
// view of the decoder's buffer where they start 4-byte aligned in memory (WAL records
// are 8-byte aligned; files are read into aligned buffers): ~0.65 ns a byte against
// ~1.1 with byte loads.
import { createRequire } from 'node:module';

const POLY = 0x82f63b78;
const T = new Int32Array(16 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let t = 1; t < 16; t++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[t * 256 + n] = c;
  }
}

export const CRC32C_INIT = 0xffffffff;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// A word view of the last buffer seen, so long aligned input is read 4 bytes per load.
let lastBuffer: ArrayBufferLike | null = null;
let lastWords: Uint32Array | null = null;

function wordsOf(buf: Uint8Array): Uint32Array {
  if (buf.buffer !== lastBuffer) {
    lastBuffer = buf.buffer;
    lastWords = new Uint32Array(buf.buffer, 0, buf.buffer.byteLength >>> 2);
  }
  return lastWords!;
}

/** The native CRC: (input, finished CRC so far) -> finished CRC, as crc32c_append. */
type NativeCrc = (input: Uint8Array, initialState?: number) => number;

/**
 * From this many bytes on, a call into the native CRC (~0.2 us each) or our word loop
 * (which needs a Uint32Array view of the buffer) beats the byte loop: measured on x86-64,
 * Node 20. Records are mostly shorter; full-page images are longer.
 */
const LONG_INPUT = 512;

function loadNative(): NativeCrc | null {
  if (process.env.PG_PREFAULTER_CRC32C === 'js') return null;
  try {
    const mod = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c?: unknown };
    const f = mod.crc32c;
    // Checked once before it is trusted with every record.
    if (typeof f !== 'function' || (f as NativeCrc)(new TextEncoder().encode('123456789')) !== 0xe3069283) return null;
    return f as NativeCrc;
  } catch {
    return null; // not installed, or no prebuilt binary for this platform: the JS one serves
  }
}

// Loaded with the first long input, not at import: loading takes ~5 ms of start-up,
// and a crash recovery's first records (short, without page images) need no more.
let native: NativeCrc | null | undefined;

function nativeCrc(): NativeCrc | null {
  if (native === undefined) native = loadNative();
  return native;
}

/** Which implementation long inputs use: 'native' (@node-rs/crc32) or 'js'. */
export function crc32cImplementation(): 'native' | 'js' {
  return nativeCrc() ? 'native' : 'js';
}

/** Continue a CRC over buf[start, end); pass CRC32C_INIT first, finish with crc32cFinish. */
export function crc32cUpdate(crc: number, buf: Uint8Array, start: number, end: number): number {
  if (end - start < LONG_INPUT) return crc32cBytes(crc, buf, start, end);
  const n = nativeCrc();
  if (n !== null) return ~n(buf.subarray(start, end), ~crc >>> 0);
  return LITTLE_ENDIAN ? crc32cWords(crc, buf, start, end) : crc32cBytes(crc, buf, start, end);
}

/**
 * 32-bit word views of the last two buffers records were checked in (a decoder
 * alternates between its input and its reassembly buffer), so a view is made once per
 * buffer, not per record. null for a buffer not 4-byte aligned in memory, or on a
 * big-endian machine: crc32cRecord then reads bytes.
 */
export class CrcWordViews {
  private buf0: Uint8Array | null = null;
  private words0: Int32Array | null = null;
  private buf1: Uint8Array | null = null;
  private words1: Int32Array | null = null;

  of(buf: Uint8Array): Int32Array | null {
    if (buf === this.buf0) return this.words0;
    if (buf !== this.buf1) {
      this.buf1 = buf;
      this.words1 = LITTLE_ENDIAN && (buf.byteOffset & 3) === 0 ? new Int32Array(buf.buffer, buf.byteOffset, buf.length >>> 2) : null;
    }
    // swap, so the latest is found first
    const b = this.buf1;
    const w = this.words1;
    this.buf1 = this.buf0;
    this.words1 = this.words0;
    this.buf0 = b;
    this.words0 = w;
    return w;
  }

  /** Lets go of the buffers (a large one the decoder dropped). */
  clear(): void {
    this.buf0 = this.buf1 = null;
    this.words0 = this.words1 = null;
  }
}

/**
 * xl_crc of the XLogRecord at buf[off, off + totLen): the bytes after its 24-byte header,
 * then the header up to xl_crc (20 bytes). One call for both, as most records are short.
 * words: CrcWordViews.of(buf).
 */
export function crc32cRecord(buf: Uint8Array, words: Int32Array | null, off: number, totLen: number): number {
  if (words !== null && (off & 3) === 0) {
    const c = totLen - 24 < LONG_INPUT ? crc32cAligned(CRC32C_INIT, buf, words, off + 24, off + totLen) : crc32cUpdate(CRC32C_INIT, buf, off + 24, off + totLen);
    return crc32cFinish(crc32cAligned(c, buf, words, off, off + 20));
  }
  const c = crc32cUpdate(CRC32C_INIT, buf, off + 24, off + totLen);
  return crc32cFinish(crc32cBytes(c, buf, off, off + 20));
}

/** buf[start, end) with start a multiple of 4, read through w, a word view of buf: 8 bytes per iteration. */
function crc32cAligned(crc: number, buf: Uint8Array, w: Int32Array, start: number, end: number): number {
  const t = T;
  let c = crc | 0;
  let k = start >>> 2;
  const kEnd = k + ((end - start) >>> 3) * 2;
  while (k < kEnd) {
    const a = c ^ w[k]!;
    const b = w[k + 1]!;
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + (b & 0xff)]! ^
      t[512 + ((b >>> 8) & 0xff)]! ^
      t[256 + ((b >>> 16) & 0xff)]! ^
      t[b >>> 24]!;
    k += 2;
  }
  let i = k * 4;
  if (end - i >= 4) {
    const a = c ^ w[k]!;
    c = t[768 + (a & 0xff)]! ^ t[512 + ((a >>> 8) & 0xff)]! ^ t[256 + ((a >>> 16) & 0xff)]! ^ t[a >>> 24]!;
    i += 4;
  }
  while (i < end) c = t[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** crc32cUpdate without the native path (tests compare the two). */
export function crc32cUpdateJs(crc: number, buf: Uint8Array, start: number, end: number): number {
  if (LITTLE_ENDIAN && end - start >= LONG_INPUT) return crc32cWords(crc, buf, start, end);
  return crc32cBytes(crc, buf, start, end);
}
function crc32cWords(crc: number, buf: Uint8Array, start: number, end: number): number {
  const t = T;
  let c = crc | 0;
  let i = start;
  // bytes up to a 4-byte boundary of the underlying ArrayBuffer
  const off = buf.byteOffset;
  while ((off + i) & 3) c = t[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  const w = wordsOf(buf);
  let k = (off + i) >>> 2;
  const k16End = k + ((end - i) >>> 4) * 4;
  while (k < k16End) {
    const a = c ^ w[k]!;
    const b = w[k + 1]!;
    const d = w[k + 2]!;
    const e = w[k + 3]!;
    c =
      t[3840 + (a & 0xff)]! ^
      t[3584 + ((a >>> 8) & 0xff)]! ^
      t[3328 + ((a >>> 16) & 0xff)]! ^
      t[3072 + (a >>> 24)]! ^
      t[2816 + (b & 0xff)]! ^
      t[2560 + ((b >>> 8) & 0xff)]! ^
      t[2304 + ((b >>> 16) & 0xff)]! ^
      t[2048 + (b >>> 24)]! ^
      t[1792 + (d & 0xff)]! ^
      t[1536 + ((d >>> 8) & 0xff)]! ^
      t[1280 + ((d >>> 16) & 0xff)]! ^
      t[1024 + (d >>> 24)]! ^
      t[768 + (e & 0xff)]! ^
      t[512 + ((e >>> 8) & 0xff)]! ^
      t[256 + ((e >>> 16) & 0xff)]! ^
      t[e >>> 24]!;
    k += 4;
  }
  const kEnd = k + ((end - ((k << 2) - off)) >>> 3) * 2;
  while (k < kEnd) {
    const a = c ^ w[k]!;
    const b = w[k + 1]!;
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + (b & 0xff)]! ^
      t[512 + ((b >>> 8) & 0xff)]! ^
      t[256 + ((b >>> 16) & 0xff)]! ^
      t[b >>> 24]!;
    k += 2;
  }
  i = (k << 2) - off;
  while (i < end) c = t[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** Byte loads (any alignment, any buffer, no set-up), 16 bytes per iteration. */
function crc32cBytes(crc: number, buf: Uint8Array, start: number, end: number): number {
  const t = T;
  let c = crc | 0;
  let i = start;
  const end16 = i + ((end - i) & ~15);
  while (i < end16) {
    const a = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    const d = buf[i + 8]! | (buf[i + 9]! << 8) | (buf[i + 10]! << 16) | (buf[i + 11]! << 24);
    const e = buf[i + 12]! | (buf[i + 13]! << 8) | (buf[i + 14]! << 16) | (buf[i + 15]! << 24);
    c =
      t[3840 + (a & 0xff)]! ^
      t[3584 + ((a >>> 8) & 0xff)]! ^
      t[3328 + ((a >>> 16) & 0xff)]! ^
      t[3072 + (a >>> 24)]! ^
      t[2816 + (b & 0xff)]! ^
      t[2560 + ((b >>> 8) & 0xff)]! ^
      t[2304 + ((b >>> 16) & 0xff)]! ^
      t[2048 + (b >>> 24)]! ^
      t[1792 + (d & 0xff)]! ^
      t[1536 + ((d >>> 8) & 0xff)]! ^
      t[1280 + ((d >>> 16) & 0xff)]! ^
      t[1024 + (d >>> 24)]! ^
      t[768 + (e & 0xff)]! ^
      t[512 + ((e >>> 8) & 0xff)]! ^
      t[256 + ((e >>> 16) & 0xff)]! ^
      t[e >>> 24]!;
    i += 16;
  }
  if (end - i >= 8) {
    const a = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + (b & 0xff)]! ^
      t[512 + ((b >>> 8) & 0xff)]! ^
      t[256 + ((b >>> 16) & 0xff)]! ^
      t[b >>> 24]!;
    i += 8;
  }
  if (end - i >= 4) {
    const a = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    c = t[768 + (a & 0xff)]! ^ t[512 + ((a >>> 8) & 0xff)]! ^ t[256 + ((a >>> 16) & 0xff)]! ^ t[a >>> 24]!;
    i += 4;
  }
  while (i < end) c = t[(c ^ buf[i++]!) & 0xff]! ^ (c >>> 8);
  return c;
}

export function crc32cFinish(crc: number): number {
  return (crc ^ 0xffffffff) >>> 0;
}

export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  return crc32cFinish(crc32cUpdate(CRC32C_INIT, buf, start, end));
}
