/** Numbers of the proxy-wasm ABI (spec abi-versions/v0.2.1; 0.1.0 where it differs). */

export type HostAbi = '0.1.0' | '0.2.0' | '0.2.1';

export const ABI_EXPORTS: Record<string, HostAbi> = {
  proxy_abi_version_0_1_0: '0.1.0',
  proxy_abi_version_0_2_0: '0.2.0',
  proxy_abi_version_0_2_1: '0.2.1',
};

export const Status = {
  Ok: 0,
  NotFound: 1,
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  InvalidMemoryAccess: 6,
  Empty: 7,
  CasMismatch: 8,
  InternalFailure: 10,
  Unimplemented: 12,
} as const;

export const MapType = {
  RequestHeaders: 0,
  RequestTrailers: 1,
  ResponseHeaders: 2,
  ResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4,
  GrpcReceiveTrailingMetadata: 5,
  HttpCallResponseHeaders: 6,
  HttpCallResponseTrailers: 7,
} as const;

export const BufferType = {
  RequestBody: 0,
  ResponseBody: 1,
  DownstreamData: 2,
  UpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
} as const;

export const StreamType = { Request: 0, Response: 1, Downstream: 2, Upstream: 3 } as const;

/** Header and body callbacks: Continue = 0; anything else stops iteration until the filter continues. */
export const Action = { Continue: 0, Pause: 1 } as const;

export const LogLevel = { Trace: 0, Debug: 1, Info: 2, Warn: 3, Error: 4, Critical: 5 } as const;
export const LOG_LEVEL_NAMES = ['trace', 'debug', 'info', 'warn', 'error', 'critical'] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const;

/** A header or trailer map: ordered pairs, keys as the filter gave them (HTTP/1 lowercases them on the wire). */
export type HeaderPairs = [string, string][];

/** Serialized pairs: u32 count, (u32 key length, u32 value length) per pair, then each key and value NUL-terminated. */
export function serializePairs(pairs: HeaderPairs): Buffer {
  const encoded = pairs.map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const);
  let size = 4 + encoded.length * 8;
  for (const [k, v] of encoded) size += k.length + 1 + v.length + 1;
  const out = Buffer.alloc(size);
  out.writeUInt32LE(encoded.length, 0);
  let lengths = 4;
  let data = 4 + encoded.length * 8;
  for (const [k, v] of encoded) {
    out.writeUInt32LE(k.length, lengths);
    out.writeUInt32LE(v.length, lengths + 4);
    lengths += 8;
    k.copy(out, data);
    data += k.length + 1;
    v.copy(out, data);
    data += v.length + 1;
  }
  return out;
}

/** The inverse; throws on a malformed buffer (the caller turns that into BAD_ARGUMENT). */
export function deserializePairs(bytes: Uint8Array): HeaderPairs {
  if (bytes.length === 0) return [];
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 4) throw new Error('pairs buffer shorter than its count');
  const count = buf.readUInt32LE(0);
  if (count > 100_000 || 4 + count * 8 > buf.length) throw new Error(`pairs buffer claims ${count} pairs`);
  const pairs: HeaderPairs = [];
  let data = 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const kl = buf.readUInt32LE(4 + i * 8);
    const vl = buf.readUInt32LE(8 + i * 8);
    if (data + kl + 1 + vl + 1 > buf.length) throw new Error('pairs buffer shorter than its lengths');
    const k = buf.toString('utf8', data, data + kl);
    data += kl + 1;
    const v = buf.toString('utf8', data, data + vl);
    data += vl + 1;
    pairs.push([k, v]);
  }
  return pairs;
}
