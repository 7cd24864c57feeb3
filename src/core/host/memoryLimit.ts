/**
 * Caps a module's own linear memory by rewriting the maximum in its memory section, so that V8 itself
 * refuses growth past the limit (memory.grow returns -1) instead of the process running out of memory.
 * Modules that import their memory get a capped memory from the host instead; see the VM.
 */
export function capModuleMemory(bytes: Uint8Array, maxPages: number): Uint8Array {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || buf.readUInt32LE(0) !== 0x6d736100) return bytes;
  let offset = 8;
  while (offset < buf.length) {
    const id = buf[offset]!;
    const [size, sizeLen] = readLeb(buf, offset + 1);
    const start = offset + 1 + sizeLen;
    const end = start + size;
    if (end > buf.length) return bytes;
    if (id === 5) {
      const [count, countLen] = readLeb(buf, start);
      let p = start + countLen;
      const entries: number[] = [...leb(count)];
      for (let i = 0; i < count; i++) {
        const flags = buf[p]!;
        p++;
        const [initial, initialLen] = readLeb(buf, p);
        p += initialLen;
        let max: number | undefined;
        if (flags & 1) {
          const [m, mLen] = readLeb(buf, p);
          max = m;
          p += mLen;
        }
        // Shared and 64-bit memories (flags 2, 4) are left alone: filters don't use them.
        if (flags & ~1) return bytes;
        // A module that starts above the limit keeps its start size and cannot grow.
        const capped = Math.max(initial, Math.min(max ?? maxPages, maxPages));
        entries.push(1, ...leb(initial), ...leb(capped));
      }
      const body = Buffer.from(entries);
      return Buffer.concat([buf.subarray(0, offset), Buffer.from([5, ...leb(body.length)]), body, buf.subarray(end)]);
    }
    offset = end;
  }
  return bytes;
}

function readLeb(buf: Buffer, at: number): [number, number] {
  let result = 0;
  let shift = 0;
  let i = at;
  for (;;) {
    const byte = buf[i++];
    if (byte === undefined) return [0, i - at];
    result += (byte & 0x7f) * 2 ** shift;
    if (!(byte & 0x80)) return [result, i - at];
    shift += 7;
  }
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}
