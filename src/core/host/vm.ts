import { randomFillSync } from 'node:crypto';
import {
  ABI_EXPORTS,
  Action,
  BufferType,
  deserializePairs,
  LOG_LEVEL_NAMES,
  MapType,
  serializePairs,
  Status,
  StreamType,
  type HeaderPairs,
  type HostAbi,
  type LogLevelName,
} from './abi';
import { capModuleMemory } from './memoryLimit';

/** A log line from the filter (or about it), with its level. */
export interface FilterLog {
  level: LogLevelName;
  message: string;
  contextId?: number;
}

/** What the host knows of a request, for properties such as `request.path` and `source.address`. */
export interface StreamInfo {
  method?: string;
  path?: string;
  scheme?: string;
  authority?: string;
  protocol?: string;
  sourceAddress?: string;
  sourcePort?: number;
  destinationAddress?: string;
  destinationPort?: number;
  requestId?: string;
  startTime?: Date;
}

export interface HttpCallRequest {
  contextId: number;
  token: number;
  upstream: string;
  headers: HeaderPairs;
  body: Buffer;
  trailers: HeaderPairs;
  timeoutMs: number;
}

export interface LocalResponse {
  status: number;
  details: string;
  body: Buffer;
  headers: HeaderPairs;
  grpcStatus: number;
}

/** Everything the host keeps for one HTTP stream. */
export interface StreamState {
  id: number;
  info: StreamInfo;
  requestHeaders: HeaderPairs;
  requestTrailers: HeaderPairs;
  responseHeaders: HeaderPairs;
  responseTrailers: HeaderPairs;
  /** Body bytes the filter sees: what arrived since the last Continue (buffered while paused). */
  requestBody: Buffer;
  responseBody: Buffer;
  localResponse?: LocalResponse;
  /** Set by proxy_continue_stream / proxy_close_stream while paused. */
  continued: { request: boolean; response: boolean };
  closed: boolean;
  properties: Map<string, Buffer>;
  responseCode?: number;
}

export interface VmOptions {
  /** The root id (Istio's pluginName); filters look it up with `plugin_root_id`. */
  rootId?: string;
  vmConfiguration?: string | Buffer;
  pluginConfiguration?: string | Buffer;
  pluginName?: string;
  vmId?: string;
  /** Linear memory cap, in 64 KiB pages (default 2,048 = 128 MiB). */
  maxMemoryPages?: number;
  logLevel?: LogLevelName;
  onLog?: (log: FilterLog) => void;
  /** Properties beyond those derived from the stream (e.g. `node.metadata.X`), by dotted path. */
  properties?: Record<string, string>;
  /** Shared between VMs of the same process (Envoy shares per VM id). */
  shared?: SharedState;
  now?: () => bigint;
}

/** Shared data and queues live outside a VM so several VMs (and restarts) see the same store. */
export class SharedState {
  readonly data = new Map<string, { value: Buffer; cas: number }>();
  readonly queues = new Map<number, { vmId: string; name: string; items: Buffer[]; onReady?: (id: number) => void }>();
  private nextQueue = 1;
  private nextCas = 1;

  setData(key: string, value: Buffer, cas: number): number {
    const existing = this.data.get(key);
    if (cas !== 0 && existing && existing.cas !== cas) return Status.CasMismatch;
    if (cas !== 0 && !existing) return Status.CasMismatch;
    this.data.set(key, { value, cas: this.nextCas++ });
    return Status.Ok;
  }

  registerQueue(vmId: string, name: string, onReady?: (id: number) => void): number {
    for (const [id, q] of this.queues) {
      if (q.vmId === vmId && q.name === name) {
        if (onReady) q.onReady = onReady;
        return id;
      }
    }
    const id = this.nextQueue++;
    this.queues.set(id, { vmId, name, items: [], ...(onReady ? { onReady } : {}) });
    return id;
  }
}

/** A guest trap or a host-detected violation: the VM is no longer usable. */
export class VmFailure extends Error {
  constructor(
    message: string,
    readonly callback: string,
  ) {
    super(message);
    this.name = 'VmFailure';
  }
}

class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
  }
}

/** A bad pointer or length from the guest: the host call fails with INVALID_MEMORY_ACCESS, the VM lives on. */
class MemoryAccessError extends Error {}

const ROOT_CONTEXT_ID = 1;
const MAX_GUEST_ALLOCATION = 64 * 1024 * 1024;

/**
 * One proxy-wasm VM: a module instance with its root context and stream contexts, and the host
 * functions of the ABI it declares (0.1.0, 0.2.0, 0.2.1 behind one interface). Calls are synchronous;
 * `WorkerVm` runs this off the main thread with time limits.
 */
export class ProxyWasmVm {
  readonly abi: HostAbi;
  private instance!: WebAssembly.Instance;
  private memory!: WebAssembly.Memory;
  private allocator!: (size: number) => number;
  private effectiveContext = ROOT_CONTEXT_ID;
  private readonly streams = new Map<number, StreamState>();
  private nextContextId = ROOT_CONTEXT_ID + 1;
  private readonly warnedUnimplemented = new Set<string>();
  private readonly metrics = new Map<number, { type: number; name: string; value: bigint }>();
  private nextMetric = 1;
  private nextCallToken = 1;
  readonly pendingCalls: HttpCallRequest[] = [];
  private readonly callResponses = new Map<number, { headers: HeaderPairs; body: Buffer; trailers: HeaderPairs }>();
  private activeCallResponse: number | undefined;
  tickPeriodMs = 0;
  private readonly shared: SharedState;
  private readonly vmConfig: Buffer;
  private readonly pluginConfig: Buffer;
  private statusInfo: { code: number; message: string } = { code: 0, message: '' };
  failed: VmFailure | undefined;
  readonly readyQueues: number[] = [];

  private constructor(
    readonly module: WebAssembly.Module,
    private readonly options: VmOptions,
  ) {
    const exports = WebAssembly.Module.exports(module).map((e) => e.name);
    const abi = exports.map((n) => ABI_EXPORTS[n]).find((a) => a !== undefined);
    if (!abi) throw new VmFailure('Missing or unknown Proxy-Wasm ABI version: the module exports no proxy_abi_version_0_1_0, _0_2_0 or _0_2_1.', 'load');
    this.abi = abi;
    this.shared = options.shared ?? new SharedState();
    this.vmConfig = toBuffer(options.vmConfiguration);
    this.pluginConfig = toBuffer(options.pluginConfiguration);
  }

  /** Compiles a module with its memory capped; compile once and create many VMs from the result. */
  static compile(bytes: Uint8Array, maxMemoryPages = 2048): WebAssembly.Module {
    return new WebAssembly.Module(capModuleMemory(bytes, maxMemoryPages));
  }

  /** Instantiates, runs `_initialize`/`_start`, creates the root context, and calls on_vm_start and on_configure. */
  static create(module: WebAssembly.Module, options: VmOptions = {}): ProxyWasmVm {
    const vm = new ProxyWasmVm(module, options);
    vm.instantiate();
    return vm;
  }

  private log(level: LogLevelName, message: string, contextId?: number): void {
    const wanted = LOG_LEVEL_NAMES.indexOf(this.options.logLevel ?? 'trace');
    if (LOG_LEVEL_NAMES.indexOf(level) < wanted) return;
    this.options.onLog?.({ level, message, ...(contextId !== undefined ? { contextId } : {}) });
  }

  private instantiate(): void {
    const imports: WebAssembly.Imports = {};
    const env = this.hostFunctions();
    const wasi = this.wasiFunctions();
    for (const imp of WebAssembly.Module.imports(this.module)) {
      const ns = (imports[imp.module] ??= {}) as Record<string, WebAssembly.ImportValue>;
      if (imp.kind === 'memory') {
        ns[imp.name] = new WebAssembly.Memory({ initial: 1, maximum: this.options.maxMemoryPages ?? 2048 });
        continue;
      }
      if (imp.kind !== 'function') continue;
      const table = imp.module === 'env' ? env : imp.module.startsWith('wasi') ? wasi : undefined;
      const fn = table?.[imp.name];
      ns[imp.name] = fn ?? this.unimplemented(`${imp.module}.${imp.name}`, imp.module.startsWith('wasi') ? 52 : Status.Unimplemented);
    }
    try {
      this.instance = new WebAssembly.Instance(this.module, imports);
    } catch (err) {
      throw new VmFailure(`The module cannot be instantiated: ${(err as Error).message}`, 'load');
    }
    const ex = this.instance.exports;
    const memory = ex.memory ?? Object.values(imports).flatMap((ns) => Object.values(ns as object)).find((v) => v instanceof WebAssembly.Memory);
    if (!(memory instanceof WebAssembly.Memory)) throw new VmFailure('The module exports no memory.', 'load');
    this.memory = memory;
    const alloc = (ex.proxy_on_memory_allocate ?? ex.malloc) as ((n: number) => number) | undefined;
    if (typeof alloc !== 'function') throw new VmFailure('The module exports no allocator (proxy_on_memory_allocate or malloc).', 'load');
    this.allocator = alloc;
    if (typeof ex._initialize === 'function') this.guest('_initialize', () => (ex._initialize as () => void)());
    else if (typeof ex._start === 'function') this.guest('_start', () => (ex._start as () => void)());
  }

  /** Creates the root context and starts the plugin; returns false (with a log line) when the filter refuses. */
  start(): boolean {
    this.callExport('proxy_on_context_create', ROOT_CONTEXT_ID, 0);
    if (!this.callBool('proxy_on_vm_start', ROOT_CONTEXT_ID, this.vmConfig.length)) {
      this.log('error', 'the filter failed to start (proxy_on_vm_start returned false)');
      return false;
    }
    if (!this.callBool('proxy_on_configure', ROOT_CONTEXT_ID, this.pluginConfig.length)) {
      this.log('error', 'the filter rejected its configuration (proxy_on_configure returned false)');
      return false;
    }
    return true;
  }

  // --- calling the guest ---

  private guest<T>(callback: string, fn: () => T): T {
    if (this.failed) throw this.failed;
    try {
      return fn();
    } catch (err) {
      if (err instanceof ProcExit) {
        if (err.code === 0 && (callback === '_start' || callback === '_initialize')) return undefined as T;
        this.failed = new VmFailure(`the filter exited (proc_exit ${err.code}) in ${callback}`, callback);
      } else if (err instanceof VmFailure) {
        this.failed = err;
      } else {
        this.failed = new VmFailure(`the filter crashed in ${callback}: ${(err as Error).message}`, callback);
      }
      this.log('critical', this.failed.message);
      throw this.failed;
    }
  }

  private callExport(name: string, ...args: number[]): number {
    const fn = this.instance.exports[name];
    if (typeof fn !== 'function') return 0;
    return this.guest(name, () => Number((fn as (...a: number[]) => number)(...args) ?? 0));
  }

  private callBool(name: string, ...args: number[]): boolean {
    const fn = this.instance.exports[name];
    if (typeof fn !== 'function') return true;
    return this.callExport(name, ...args) !== 0;
  }

  private withContext<T>(contextId: number, fn: () => T): T {
    this.effectiveContext = contextId;
    return fn();
  }

  // --- streams, as the proxy drives them ---

  createStream(info: StreamInfo = {}): StreamState {
    const id = this.nextContextId++;
    const stream: StreamState = {
      id,
      info: { startTime: new Date(), ...info },
      requestHeaders: [],
      requestTrailers: [],
      responseHeaders: [],
      responseTrailers: [],
      requestBody: Buffer.alloc(0),
      responseBody: Buffer.alloc(0),
      continued: { request: false, response: false },
      closed: false,
      properties: new Map(),
    };
    this.streams.set(id, stream);
    this.withContext(id, () => this.callExport('proxy_on_context_create', id, ROOT_CONTEXT_ID));
    return stream;
  }

  stream(id: number): StreamState | undefined {
    return this.streams.get(id);
  }

  /** Request headers through the filter: the action (0 continue, else paused). Headers are changed in place. */
  onRequestHeaders(stream: StreamState, headers: HeaderPairs, endOfStream: boolean): number {
    stream.requestHeaders = headers;
    return this.withContext(stream.id, () => this.callExport('proxy_on_request_headers', stream.id, headers.length, endOfStream ? 1 : 0));
  }

  onRequestBody(stream: StreamState, chunk: Buffer, endOfStream: boolean): number {
    stream.requestBody = Buffer.concat([stream.requestBody, chunk]);
    return this.withContext(stream.id, () => this.callExport('proxy_on_request_body', stream.id, stream.requestBody.length, endOfStream ? 1 : 0));
  }

  onRequestTrailers(stream: StreamState, trailers: HeaderPairs): number {
    stream.requestTrailers = trailers;
    return this.withContext(stream.id, () => this.callExport('proxy_on_request_trailers', stream.id, trailers.length));
  }

  onResponseHeaders(stream: StreamState, headers: HeaderPairs, endOfStream: boolean): number {
    stream.responseHeaders = headers;
    return this.withContext(stream.id, () => this.callExport('proxy_on_response_headers', stream.id, headers.length, endOfStream ? 1 : 0));
  }

  onResponseBody(stream: StreamState, chunk: Buffer, endOfStream: boolean): number {
    stream.responseBody = Buffer.concat([stream.responseBody, chunk]);
    return this.withContext(stream.id, () => this.callExport('proxy_on_response_body', stream.id, stream.responseBody.length, endOfStream ? 1 : 0));
  }

  onResponseTrailers(stream: StreamState, trailers: HeaderPairs): number {
    stream.responseTrailers = trailers;
    return this.withContext(stream.id, () => this.callExport('proxy_on_response_trailers', stream.id, trailers.length));
  }

  /** The stream is over: on_done, on_log, on_delete, as Envoy calls them. */
  finishStream(stream: StreamState): void {
    if (!this.streams.has(stream.id) || this.failed) {
      this.streams.delete(stream.id);
      return;
    }
    try {
      this.withContext(stream.id, () => {
        this.callExport('proxy_on_done', stream.id);
        this.callExport('proxy_on_log', stream.id);
        this.callExport('proxy_on_delete', stream.id);
      });
    } finally {
      this.streams.delete(stream.id);
    }
  }

  /** Delivers an HTTP callout's response to the context that made the call. */
  onHttpCallResponse(call: HttpCallRequest, response: { headers: HeaderPairs; body: Buffer; trailers: HeaderPairs } | undefined): void {
    const r = response ?? { headers: [], body: Buffer.alloc(0), trailers: [] };
    this.callResponses.set(call.token, r);
    this.activeCallResponse = call.token;
    try {
      this.withContext(call.contextId, () => this.callExport('proxy_on_http_call_response', call.contextId, call.token, response ? r.headers.length : 0, r.body.length, r.trailers.length));
    } finally {
      this.callResponses.delete(call.token);
      this.activeCallResponse = undefined;
    }
  }

  onTick(): void {
    this.withContext(ROOT_CONTEXT_ID, () => this.callExport('proxy_on_tick', ROOT_CONTEXT_ID));
  }

  onQueueReady(queueId: number): void {
    this.withContext(ROOT_CONTEXT_ID, () => this.callExport('proxy_on_queue_ready', ROOT_CONTEXT_ID, queueId));
  }

  metricsSnapshot(): { name: string; type: number; value: bigint }[] {
    return [...this.metrics.values()].map((m) => ({ ...m }));
  }

  memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  // --- guest memory, bounds-checked ---

  private bytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  private read(ptr: number, len: number): Buffer {
    const p = ptr >>> 0;
    const l = len >>> 0;
    const mem = this.bytes();
    if (p + l > mem.length) throw new MemoryAccessError(`read of ${l} bytes at ${p} is outside the ${mem.length}-byte memory`);
    return Buffer.from(mem.subarray(p, p + l));
  }

  private readString(ptr: number, len: number): string {
    return this.read(ptr, len).toString('utf8');
  }

  private writeU32(ptr: number, value: number): void {
    const p = ptr >>> 0;
    const mem = this.bytes();
    if (p + 4 > mem.length) throw new MemoryAccessError(`write at ${p} is outside the memory`);
    new DataView(this.memory.buffer).setUint32(p, value >>> 0, true);
  }

  private writeU64(ptr: number, value: bigint): void {
    const p = ptr >>> 0;
    if (p + 8 > this.bytes().length) throw new MemoryAccessError(`write at ${p} is outside the memory`);
    new DataView(this.memory.buffer).setBigUint64(p, value, true);
  }

  /** Copies bytes into memory the guest allocates, and writes their address and length where it asked. */
  private returnBytes(data: Uint8Array, retPtr: number, retLen: number): number {
    if (data.length > MAX_GUEST_ALLOCATION) throw new MemoryAccessError(`refusing to copy ${data.length} bytes into the guest`);
    const ptr = data.length === 0 ? 0 : this.allocator(data.length) >>> 0;
    if (data.length) {
      const mem = this.bytes();
      if (ptr === 0 || ptr + data.length > mem.length) throw new MemoryAccessError(`the guest allocator returned ${ptr} for ${data.length} bytes`);
      mem.set(data, ptr);
    }
    this.writeU32(retPtr, ptr);
    this.writeU32(retLen, data.length);
    return Status.Ok;
  }

  // --- host functions ---

  private unimplemented(name: string, code: number) {
    return () => {
      if (!this.warnedUnimplemented.has(name)) {
        this.warnedUnimplemented.add(name);
        this.log('warn', `host function ${name} is not implemented here; it returns ${code === Status.Unimplemented ? 'UNIMPLEMENTED' : `errno ${code}`}`);
      }
      return code;
    };
  }

  /** Wraps a host function: bad pointers become INVALID_MEMORY_ACCESS, bad input BAD_ARGUMENT. */
  private host<A extends unknown[]>(name: string, fn: (...args: A) => number) {
    return (...args: A): number => {
      try {
        return fn(...args);
      } catch (err) {
        if (err instanceof MemoryAccessError) {
          this.log('error', `${name}: ${err.message}`, this.effectiveContext);
          return Status.InvalidMemoryAccess;
        }
        if (err instanceof ProcExit || err instanceof VmFailure || err instanceof WebAssembly.RuntimeError) throw err;
        this.log('error', `${name}: ${(err as Error).message}`, this.effectiveContext);
        return Status.BadArgument;
      }
    };
  }

  private current(): StreamState | undefined {
    return this.streams.get(this.effectiveContext);
  }

  private headerMap(type: number): HeaderPairs | undefined {
    if (type === MapType.HttpCallResponseHeaders || type === MapType.HttpCallResponseTrailers) {
      const r = this.activeCallResponse !== undefined ? this.callResponses.get(this.activeCallResponse) : undefined;
      return r ? (type === MapType.HttpCallResponseHeaders ? r.headers : r.trailers) : undefined;
    }
    const s = this.current();
    if (!s) return undefined;
    switch (type) {
      case MapType.RequestHeaders:
        return s.requestHeaders;
      case MapType.RequestTrailers:
        return s.requestTrailers;
      case MapType.ResponseHeaders:
        return s.responseHeaders;
      case MapType.ResponseTrailers:
        return s.responseTrailers;
      default:
        return undefined;
    }
  }

  private setHeaderMap(type: number, pairs: HeaderPairs): boolean {
    const s = this.current();
    if (!s) return false;
    if (type === MapType.RequestHeaders) s.requestHeaders = pairs;
    else if (type === MapType.RequestTrailers) s.requestTrailers = pairs;
    else if (type === MapType.ResponseHeaders) s.responseHeaders = pairs;
    else if (type === MapType.ResponseTrailers) s.responseTrailers = pairs;
    else return false;
    return true;
  }

  private buffer(type: number): Buffer | undefined {
    switch (type) {
      case BufferType.VmConfiguration:
        return this.vmConfig;
      case BufferType.PluginConfiguration:
        return this.pluginConfig;
      case BufferType.RequestBody:
        return this.current()?.requestBody;
      case BufferType.ResponseBody:
        return this.current()?.responseBody;
      case BufferType.HttpCallResponseBody: {
        const r = this.activeCallResponse !== undefined ? this.callResponses.get(this.activeCallResponse) : undefined;
        return r?.body;
      }
      default:
        return undefined;
    }
  }

  private hostFunctions(): Record<string, (...args: any[]) => number> {
    const sameKey = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    return {
      proxy_log: this.host('proxy_log', (level: number, ptr: number, len: number) => {
        this.log(LOG_LEVEL_NAMES[level] ?? 'info', this.readString(ptr, len), this.effectiveContext);
        return Status.Ok;
      }),
      proxy_get_log_level: this.host('proxy_get_log_level', (retPtr: number) => {
        this.writeU32(retPtr, LOG_LEVEL_NAMES.indexOf(this.options.logLevel ?? 'trace'));
        return Status.Ok;
      }),
      proxy_get_current_time_nanoseconds: this.host('proxy_get_current_time_nanoseconds', (retPtr: number) => {
        this.writeU64(retPtr, this.options.now?.() ?? BigInt(Date.now()) * 1_000_000n);
        return Status.Ok;
      }),
      proxy_set_tick_period_milliseconds: this.host('proxy_set_tick_period_milliseconds', (ms: number) => {
        this.tickPeriodMs = ms >>> 0;
        return Status.Ok;
      }),
      proxy_set_effective_context: this.host('proxy_set_effective_context', (id: number) => {
        if (id !== ROOT_CONTEXT_ID && !this.streams.has(id)) return Status.BadArgument;
        this.effectiveContext = id;
        return Status.Ok;
      }),
      proxy_done: this.host('proxy_done', () => Status.Ok),

      proxy_get_configuration: this.host('proxy_get_configuration', (retPtr: number, retLen: number) => this.returnBytes(this.pluginConfig, retPtr, retLen)),
      proxy_get_buffer_bytes: this.host('proxy_get_buffer_bytes', (type: number, start: number, max: number, retPtr: number, retLen: number) => {
        const buf = this.buffer(type);
        if (!buf) return Status.NotFound;
        const s = start >>> 0;
        if (s > buf.length) return Status.BadArgument;
        const slice = buf.subarray(s, s + (max >>> 0));
        // As Envoy does: nothing to copy means nothing is written back. The wasme-era SDK relies on it (it
        // passes the configuration size where the length pointer belongs).
        if (slice.length === 0) return Status.Ok;
        return this.returnBytes(slice, retPtr, retLen);
      }),
      proxy_get_buffer_status: this.host('proxy_get_buffer_status', (type: number, retLen: number, retFlags: number) => {
        const buf = this.buffer(type);
        if (!buf) return Status.NotFound;
        this.writeU32(retLen, buf.length);
        this.writeU32(retFlags, 0);
        return Status.Ok;
      }),
      proxy_set_buffer_bytes: this.host('proxy_set_buffer_bytes', (type: number, start: number, length: number, ptr: number, len: number) => {
        const s = this.current();
        if (!s || (type !== BufferType.RequestBody && type !== BufferType.ResponseBody)) return Status.NotFound;
        const data = this.read(ptr, len);
        const current = type === BufferType.RequestBody ? s.requestBody : s.responseBody;
        const from = Math.min(start >>> 0, current.length);
        const to = Math.min(from + (length >>> 0), current.length);
        const next = Buffer.concat([current.subarray(0, from), data, current.subarray(to)]);
        if (type === BufferType.RequestBody) s.requestBody = next;
        else s.responseBody = next;
        return Status.Ok;
      }),

      proxy_get_header_map_pairs: this.host('proxy_get_header_map_pairs', (type: number, retPtr: number, retLen: number) => {
        const map = this.headerMap(type);
        if (!map) return Status.NotFound;
        return this.returnBytes(serializePairs(map), retPtr, retLen);
      }),
      proxy_set_header_map_pairs: this.host('proxy_set_header_map_pairs', (type: number, ptr: number, len: number) => {
        const pairs = deserializePairs(this.read(ptr, len));
        return this.setHeaderMap(type, pairs) ? Status.Ok : Status.NotFound;
      }),
      proxy_get_header_map_size: this.host('proxy_get_header_map_size', (type: number, retPtr: number) => {
        const map = this.headerMap(type);
        if (!map) return Status.NotFound;
        this.writeU32(retPtr, serializePairs(map).length);
        return Status.Ok;
      }),
      proxy_get_header_map_value: this.host('proxy_get_header_map_value', (type: number, kp: number, kl: number, retPtr: number, retLen: number) => {
        const map = this.headerMap(type);
        if (!map) return Status.NotFound;
        const key = this.readString(kp, kl);
        const found = map.find(([k]) => sameKey(k, key));
        if (!found) return Status.NotFound;
        return this.returnBytes(Buffer.from(found[1], 'utf8'), retPtr, retLen);
      }),
      proxy_add_header_map_value: this.host('proxy_add_header_map_value', (type: number, kp: number, kl: number, vp: number, vl: number) => {
        const map = this.headerMap(type);
        if (!map || type >= MapType.GrpcReceiveInitialMetadata) return Status.NotFound;
        map.push([this.readString(kp, kl), this.readString(vp, vl)]);
        return Status.Ok;
      }),
      proxy_replace_header_map_value: this.host('proxy_replace_header_map_value', (type: number, kp: number, kl: number, vp: number, vl: number) => {
        const map = this.headerMap(type);
        if (!map || type >= MapType.GrpcReceiveInitialMetadata) return Status.NotFound;
        const key = this.readString(kp, kl);
        const value = this.readString(vp, vl);
        const kept = map.filter(([k]) => !sameKey(k, key));
        kept.push([key, value]);
        map.splice(0, map.length, ...kept);
        return Status.Ok;
      }),
      proxy_remove_header_map_value: this.host('proxy_remove_header_map_value', (type: number, kp: number, kl: number) => {
        const map = this.headerMap(type);
        if (!map || type >= MapType.GrpcReceiveInitialMetadata) return Status.NotFound;
        const key = this.readString(kp, kl);
        const kept = map.filter(([k]) => !sameKey(k, key));
        map.splice(0, map.length, ...kept);
        return Status.Ok;
      }),

      proxy_continue_stream: this.host('proxy_continue_stream', (type: number) => {
        const s = this.current();
        if (!s) return Status.NotFound;
        if (type === StreamType.Request) s.continued.request = true;
        else if (type === StreamType.Response) s.continued.response = true;
        else return Status.Unimplemented;
        return Status.Ok;
      }),
      proxy_continue_request: this.host('proxy_continue_request', () => {
        const s = this.current();
        if (!s) return Status.NotFound;
        s.continued.request = true;
        return Status.Ok;
      }),
      proxy_continue_response: this.host('proxy_continue_response', () => {
        const s = this.current();
        if (!s) return Status.NotFound;
        s.continued.response = true;
        return Status.Ok;
      }),
      proxy_close_stream: this.host('proxy_close_stream', () => {
        const s = this.current();
        if (!s) return Status.NotFound;
        s.closed = true;
        return Status.Ok;
      }),
      proxy_clear_route_cache: this.host('proxy_clear_route_cache', () => Status.Ok),
      proxy_get_status: this.host('proxy_get_status', (codePtr: number, msgPtr: number, msgLen: number) => {
        this.writeU32(codePtr, this.statusInfo.code);
        return this.returnBytes(Buffer.from(this.statusInfo.message), msgPtr, msgLen);
      }),
      proxy_send_local_response: this.host(
        'proxy_send_local_response',
        (status: number, dp: number, dl: number, bp: number, bl: number, hp: number, hl: number, grpc: number) => {
          const s = this.current();
          if (!s) return Status.NotFound;
          s.localResponse = { status: status >>> 0, details: this.readString(dp, dl), body: this.read(bp, bl), headers: deserializePairs(this.read(hp, hl)), grpcStatus: grpc | 0 };
          return Status.Ok;
        },
      ),

      proxy_http_call: this.host(
        'proxy_http_call',
        (up: number, ul: number, hp: number, hl: number, bp: number, bl: number, tp: number, tl: number, timeout: number, tokenPtr: number) => {
          const upstream = this.readString(up, ul);
          const headers = deserializePairs(this.read(hp, hl));
          const body = this.read(bp, bl);
          const trailers = deserializePairs(this.read(tp, tl));
          const has = (name: string) => headers.some(([k]) => k.toLowerCase() === name);
          if (!has(':method') || !has(':path') || !has(':authority')) return Status.BadArgument;
          const token = this.nextCallToken++;
          this.writeU32(tokenPtr, token);
          this.pendingCalls.push({ contextId: this.effectiveContext, token, upstream, headers, body, trailers, timeoutMs: timeout >>> 0 });
          return Status.Ok;
        },
      ),

      proxy_get_shared_data: this.host('proxy_get_shared_data', (kp: number, kl: number, vp: number, vl: number, casPtr: number) => {
        const entry = this.shared.data.get(this.readString(kp, kl));
        if (!entry) return Status.NotFound;
        this.returnBytes(entry.value, vp, vl);
        this.writeU32(casPtr, entry.cas);
        return Status.Ok;
      }),
      proxy_set_shared_data: this.host('proxy_set_shared_data', (kp: number, kl: number, vp: number, vl: number, cas: number) =>
        this.shared.setData(this.readString(kp, kl), this.read(vp, vl), cas >>> 0),
      ),
      proxy_register_shared_queue: this.host('proxy_register_shared_queue', (np: number, nl: number, retId: number) => {
        const id = this.shared.registerQueue(this.options.vmId ?? '', this.readString(np, nl), (q) => this.readyQueues.push(q));
        this.writeU32(retId, id);
        return Status.Ok;
      }),
      proxy_resolve_shared_queue: this.host('proxy_resolve_shared_queue', (vp: number, vl: number, np: number, nl: number, retId: number) => {
        const vmId = this.readString(vp, vl);
        const name = this.readString(np, nl);
        for (const [id, q] of this.shared.queues) {
          if (q.vmId === vmId && q.name === name) {
            this.writeU32(retId, id);
            return Status.Ok;
          }
        }
        return Status.NotFound;
      }),
      proxy_enqueue_shared_queue: this.host('proxy_enqueue_shared_queue', (id: number, vp: number, vl: number) => {
        const q = this.shared.queues.get(id >>> 0);
        if (!q) return Status.NotFound;
        q.items.push(this.read(vp, vl));
        q.onReady?.(id >>> 0);
        return Status.Ok;
      }),
      proxy_dequeue_shared_queue: this.host('proxy_dequeue_shared_queue', (id: number, retPtr: number, retLen: number) => {
        const q = this.shared.queues.get(id >>> 0);
        if (!q) return Status.NotFound;
        const item = q.items.shift();
        if (!item) return Status.Empty;
        return this.returnBytes(item, retPtr, retLen);
      }),

      proxy_define_metric: this.host('proxy_define_metric', (type: number, np: number, nl: number, retId: number) => {
        if (type > 2) return Status.BadArgument;
        const name = this.readString(np, nl);
        let id = [...this.metrics.entries()].find(([, m]) => m.name === name)?.[0];
        if (id === undefined) {
          id = this.nextMetric++;
          this.metrics.set(id, { type, name, value: 0n });
        }
        this.writeU32(retId, id);
        return Status.Ok;
      }),
      proxy_increment_metric: this.host('proxy_increment_metric', (id: number, offset: bigint) => {
        const m = this.metrics.get(id >>> 0);
        if (!m) return Status.NotFound;
        if (m.type === 2) return Status.BadArgument;
        m.value += BigInt(offset);
        return Status.Ok;
      }),
      proxy_record_metric: this.host('proxy_record_metric', (id: number, value: bigint) => {
        const m = this.metrics.get(id >>> 0);
        if (!m) return Status.NotFound;
        m.value = BigInt.asUintN(64, BigInt(value));
        return Status.Ok;
      }),
      proxy_get_metric: this.host('proxy_get_metric', (id: number, retPtr: number) => {
        const m = this.metrics.get(id >>> 0);
        if (!m) return Status.NotFound;
        if (m.type === 2) return Status.BadArgument;
        this.writeU64(retPtr, BigInt.asUintN(64, m.value));
        return Status.Ok;
      }),

      proxy_get_property: this.host('proxy_get_property', (pp: number, pl: number, retPtr: number, retLen: number) => {
        const path = this.readString(pp, pl).split('\0').filter(Boolean).join('.');
        const value = this.property(path);
        if (value === undefined) return Status.NotFound;
        return this.returnBytes(value, retPtr, retLen);
      }),
      proxy_set_property: this.host('proxy_set_property', (pp: number, pl: number, vp: number, vl: number) => {
        const path = this.readString(pp, pl).split('\0').filter(Boolean).join('.');
        const s = this.current();
        if (!s) return Status.NotFound;
        s.properties.set(path, this.read(vp, vl));
        return Status.Ok;
      }),
      proxy_call_foreign_function: this.unimplemented('env.proxy_call_foreign_function', Status.NotFound),
    };
  }

  /** Envoy's attributes for the effective stream, as the spec's property paths name them. */
  private property(path: string): Buffer | undefined {
    const s = this.current();
    const set = s?.properties.get(path);
    if (set) return set;
    const str = (v: string | undefined) => (v === undefined ? undefined : Buffer.from(v, 'utf8'));
    const int = (v: number | undefined) => {
      if (v === undefined) return undefined;
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(BigInt(v));
      return b;
    };
    const header = (name: string) => s?.requestHeaders.find(([k]) => k.toLowerCase() === name)?.[1];
    switch (path) {
      case 'plugin_root_id':
        return str(this.options.rootId ?? '');
      case 'plugin_name':
        return str(this.options.pluginName ?? this.options.rootId ?? '');
      case 'plugin_vm_id':
        return str(this.options.vmId ?? '');
      case 'request.path':
        return str(s?.info.path ?? header(':path'));
      case 'request.url_path':
        return str((s?.info.path ?? header(':path'))?.split('?')[0]);
      case 'request.method':
        return str(s?.info.method ?? header(':method'));
      case 'request.host':
        return str(s?.info.authority ?? header(':authority'));
      case 'request.scheme':
        return str(s?.info.scheme ?? header(':scheme'));
      case 'request.protocol':
        return str(s?.info.protocol);
      case 'request.id':
        return str(s?.info.requestId ?? header('x-request-id'));
      case 'request.useragent':
        return str(header('user-agent'));
      case 'request.referer':
        return str(header('referer'));
      case 'request.time':
        return s?.info.startTime ? int(s.info.startTime.getTime() * 1_000_000) : undefined;
      case 'response.code':
        return int(s?.responseCode);
      case 'source.address':
        return str(s?.info.sourceAddress !== undefined ? `${s.info.sourceAddress}:${s.info.sourcePort ?? 0}` : undefined);
      case 'source.port':
        return int(s?.info.sourcePort);
      case 'destination.address':
        return str(s?.info.destinationAddress !== undefined ? `${s.info.destinationAddress}:${s.info.destinationPort ?? 0}` : undefined);
      case 'destination.port':
        return int(s?.info.destinationPort);
      default: {
        const custom = this.options.properties?.[path];
        return custom === undefined ? undefined : str(custom);
      }
    }
  }

  private wasiFunctions(): Record<string, (...args: any[]) => number> {
    const ERRNO_BADF = 8;
    return {
      fd_write: this.host('fd_write', (fd: number, iovs: number, iovsLen: number, nwritten: number) => {
        let text = '';
        let total = 0;
        for (let i = 0; i < iovsLen >>> 0; i++) {
          const view = this.read(iovs + i * 8, 8);
          const chunk = this.read(view.readUInt32LE(0), view.readUInt32LE(4));
          text += chunk.toString('utf8');
          total += chunk.length;
        }
        if (fd !== 1 && fd !== 2) return ERRNO_BADF;
        for (const line of text.split('\n').filter((l) => l.length)) this.log(fd === 2 ? 'error' : 'info', line, this.effectiveContext);
        this.writeU32(nwritten, total);
        return 0;
      }),
      proc_exit: (code: number) => {
        throw new ProcExit(code);
      },
      clock_time_get: this.host('clock_time_get', (_id: number, _precision: bigint, retPtr: number) => {
        this.writeU64(retPtr, this.options.now?.() ?? BigInt(Date.now()) * 1_000_000n);
        return 0;
      }),
      clock_res_get: this.host('clock_res_get', (_id: number, retPtr: number) => {
        this.writeU64(retPtr, 1_000n);
        return 0;
      }),
      random_get: this.host('random_get', (ptr: number, len: number) => {
        const target = this.read(ptr, len);
        randomFillSync(target);
        this.bytes().set(target, ptr >>> 0);
        return 0;
      }),
      environ_sizes_get: this.host('environ_sizes_get', (countPtr: number, sizePtr: number) => {
        this.writeU32(countPtr, 0);
        this.writeU32(sizePtr, 0);
        return 0;
      }),
      environ_get: () => 0,
      args_sizes_get: this.host('args_sizes_get', (countPtr: number, sizePtr: number) => {
        this.writeU32(countPtr, 0);
        this.writeU32(sizePtr, 0);
        return 0;
      }),
      args_get: () => 0,
      fd_close: () => ERRNO_BADF,
      fd_seek: () => ERRNO_BADF,
      fd_fdstat_get: () => ERRNO_BADF,
      fd_prestat_get: () => ERRNO_BADF,
      sched_yield: () => 0,
    };
  }
}

function toBuffer(value: string | Buffer | undefined): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

export { Action };
