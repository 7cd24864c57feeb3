import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HeaderPairs } from './abi';
import type { FilterLog, HttpCallRequest, StreamInfo, VmOptions } from './vm';
import { createVmSession, type StreamSnapshot, type VmReply, type VmRequest, type VmStartReply, type VmWorkerData } from './vmWorker';

export interface RuntimeOptions extends Omit<VmOptions, 'onLog' | 'shared' | 'now'> {
  /** The longest a single callback may run before its VM is stopped (default 1 s). Needs worker isolation. */
  callbackTimeoutMs?: number;
  /**
   * `worker` (default): each VM in a worker thread, so a runaway callback is stopped at the time limit.
   * `none`: the VM on the calling thread: faster, still contains traps and memory limits, but an endless
   * loop hangs the proxy. For trusted filters and benchmarks.
   */
  isolation?: 'worker' | 'none';
  onLog?: (log: FilterLog) => void;
}

/** The outcome of one callback: the filter's action and the stream as it left it. */
export interface CallbackResult {
  action: number;
  stream: StreamSnapshot;
  calls: HttpCallRequest[];
}

/** The VM failed (trap, time limit, memory limit, proc_exit): it is gone; the next stream gets a new one. */
export class FilterFailedError extends Error {
  constructor(
    message: string,
    readonly callback: string,
  ) {
    super(message);
    this.name = 'FilterFailedError';
  }
}

type Distributive<T> = T extends unknown ? Omit<T, 'id'> : never;

function workerScript(): string {
  const candidates = [path.join(__dirname, 'vmWorker.js'), path.join(__dirname, 'host', 'vmWorker.js')];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

/** The common face of a VM host: in a worker, or in this thread. */
interface VmHost {
  failed: FilterFailedError | undefined;
  abi: string;
  tickPeriodMs: number;
  call(req: Distributive<VmRequest>): Promise<VmReply>;
  stop(): Promise<void>;
}

/** A VM on the calling thread (isolation `none`). */
class InProcessVm implements VmHost {
  failed: FilterFailedError | undefined;
  abi = '';
  tickPeriodMs = 0;
  private nextId = 1;

  private constructor(
    private readonly session: ReturnType<typeof createVmSession>,
    private readonly onLog: (l: FilterLog) => void,
  ) {}

  static start(wasm: Uint8Array, options: RuntimeOptions): InProcessVm {
    const { callbackTimeoutMs: _t, isolation: _i, onLog, ...vmOptions } = options;
    const log = onLog ?? (() => undefined);
    const session = createVmSession({ wasm, options: vmOptions });
    for (const l of session.started.logs) log(l);
    if (!session.started.ok) throw new FilterFailedError(session.started.error, 'start');
    const vm = new InProcessVm(session, log);
    vm.abi = session.started.abi;
    vm.tickPeriodMs = session.started.tickPeriodMs;
    return vm;
  }

  async call(req: Distributive<VmRequest>): Promise<VmReply> {
    if (this.failed) throw this.failed;
    const reply = this.session.handle({ ...req, id: this.nextId++ } as VmRequest);
    for (const l of reply.logs) this.onLog(l);
    this.tickPeriodMs = reply.tickPeriodMs;
    if (reply.failure) {
      this.failed = new FilterFailedError(reply.failure.message, reply.failure.callback);
      this.onLog({ level: 'critical', message: `${this.failed.message}; the VM was dropped and a new one will serve the next requests` });
      throw this.failed;
    }
    return reply;
  }

  async stop(): Promise<void> {
    this.failed ??= new FilterFailedError('the VM was stopped', 'stop');
  }
}

/** One VM in its own worker thread. */
class WorkerVm implements VmHost {
  private readonly pending = new Map<number, { resolve: (r: VmReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; op: string }>();
  private nextId = 1;
  failed: FilterFailedError | undefined;
  abi = '';
  tickPeriodMs = 0;

  private constructor(
    private readonly worker: Worker,
    private readonly timeoutMs: number,
    private readonly onLog: (l: FilterLog) => void,
  ) {
    worker.on('message', (reply: VmReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      for (const l of reply.logs) this.onLog(l);
      this.tickPeriodMs = reply.tickPeriodMs;
      if (reply.failure) {
        this.fail(new FilterFailedError(reply.failure.message, reply.failure.callback));
        p.reject(this.failed!);
      } else p.resolve(reply);
    });
    worker.on('error', (err) => this.fail(new FilterFailedError(`the filter's VM failed: ${err.message}`, 'worker')));
    worker.on('exit', () => this.fail(new FilterFailedError("the filter's VM stopped", 'worker')));
  }

  static async start(wasm: Uint8Array, options: RuntimeOptions): Promise<WorkerVm> {
    const { callbackTimeoutMs, onLog, isolation: _i, ...vmOptions } = options;
    const log = onLog ?? (() => undefined);
    const worker = new Worker(workerScript(), { workerData: { wasm, options: vmOptions } satisfies VmWorkerData });
    const started = await new Promise<VmStartReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new FilterFailedError(`the filter did not start within ${(callbackTimeoutMs ?? 1000) * 5} ms`, 'start'));
      }, (callbackTimeoutMs ?? 1000) * 5);
      worker.once('message', (m: VmStartReply) => {
        clearTimeout(timer);
        resolve(m);
      });
      worker.once('error', (err) => {
        clearTimeout(timer);
        reject(new FilterFailedError(`the filter's VM failed to start: ${err.message}`, 'start'));
      });
    });
    for (const l of started.logs) log(l);
    if (!started.ok) {
      await worker.terminate();
      throw new FilterFailedError(started.error, 'start');
    }
    const vm = new WorkerVm(worker, callbackTimeoutMs ?? 1000, log);
    vm.abi = started.abi;
    vm.tickPeriodMs = started.tickPeriodMs;
    return vm;
  }

  private fail(err: FilterFailedError): void {
    if (this.failed) return;
    this.failed = err;
    this.onLog({ level: 'critical', message: `${err.message}; the VM was stopped and a new one will serve the next requests` });
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    void this.worker.terminate();
  }

  call(req: Distributive<VmRequest>): Promise<VmReply> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new FilterFailedError(`the filter ran longer than ${this.timeoutMs} ms in ${callbackName(req.op)} and was stopped`, callbackName(req.op)));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer, op: req.op });
      this.worker.postMessage({ ...req, id } as VmRequest);
    });
  }

  async stop(): Promise<void> {
    this.failed ??= new FilterFailedError('the VM was stopped', 'stop');
    await this.worker.terminate();
  }
}

function callbackName(op: string): string {
  const names: Record<string, string> = {
    create: 'proxy_on_context_create',
    begin: 'proxy_on_request_headers',
    response: 'proxy_on_response_headers/body',
    requestHeaders: 'proxy_on_request_headers',
    requestBody: 'proxy_on_request_body',
    requestTrailers: 'proxy_on_request_trailers',
    responseHeaders: 'proxy_on_response_headers',
    responseBody: 'proxy_on_response_body',
    responseTrailers: 'proxy_on_response_trailers',
    httpCallResponse: 'proxy_on_http_call_response',
    finish: 'proxy_on_done',
    tick: 'proxy_on_tick',
  };
  return names[op] ?? op;
}

/** A handle on one stream of a filter runtime. */
export interface FilterStream {
  readonly id: number;
  readonly vm: VmHost;
  /** Set once on_done/on_log/on_delete ran. */
  finished: boolean;
}

/**
 * A filter ready to serve streams: one VM in a worker thread, replaced by a fresh one when it fails.
 * Streams that were on a failed VM fail; streams after it get the new VM.
 */
export class FilterRuntime {
  private vm: VmHost | undefined;
  private starting: Promise<VmHost> | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  restarts = 0;

  private constructor(
    private readonly wasm: Uint8Array,
    private readonly options: RuntimeOptions,
  ) {}

  static async start(wasm: Uint8Array, options: RuntimeOptions = {}): Promise<FilterRuntime> {
    const runtime = new FilterRuntime(wasm, options);
    await runtime.currentVm();
    return runtime;
  }

  get abi(): string {
    return this.vm?.abi ?? '';
  }

  private async currentVm(): Promise<VmHost> {
    if (this.vm && !this.vm.failed) return this.vm;
    if (this.vm?.failed) this.restarts++;
    if (this.starting) return this.starting;
    const start: Promise<VmHost> = this.options.isolation === 'none' ? Promise.resolve().then(() => InProcessVm.start(this.wasm, this.options)) : WorkerVm.start(this.wasm, this.options);
    this.starting = start.then(
      (vm) => {
        this.vm = vm;
        this.starting = undefined;
        this.scheduleTick();
        return vm;
      },
      (err) => {
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  private scheduleTick(): void {
    clearTimeout(this.tickTimer);
    const vm = this.vm;
    if (!vm || !vm.tickPeriodMs) return;
    this.tickTimer = setTimeout(() => {
      vm.call({ op: 'tick' }).then(
        () => this.scheduleTick(),
        () => undefined,
      );
    }, vm.tickPeriodMs);
    this.tickTimer.unref();
  }

  /** Creates a stream and runs the request headers through the filter, in one message to the VM. */
  async begin(info: StreamInfo, headers: HeaderPairs, endOfStream: boolean): Promise<{ stream: FilterStream; result: CallbackResult }> {
    const vm = await this.currentVm();
    const reply = await vm.call({ op: 'begin', info, headers, endOfStream });
    const stream = { id: reply.stream!.id, vm, finished: false };
    return { stream, result: { action: reply.action ?? 0, stream: reply.stream!, calls: reply.calls } };
  }

  async createStream(info: StreamInfo): Promise<FilterStream> {
    const vm = await this.currentVm();
    const reply = await vm.call({ op: 'create', info });
    return { id: reply.stream!.id, vm, finished: false };
  }

  private async result(stream: FilterStream, req: Distributive<VmRequest>): Promise<CallbackResult> {
    const reply = await stream.vm.call(req);
    if (reply.finished) stream.finished = true;
    if (reply.tickPeriodMs && !this.tickTimer) this.scheduleTick();
    return { action: reply.action ?? 0, stream: reply.stream!, calls: reply.calls };
  }

  requestHeaders(s: FilterStream, headers: HeaderPairs, endOfStream: boolean) {
    return this.result(s, { op: 'requestHeaders', stream: s.id, headers, endOfStream });
  }
  requestBody(s: FilterStream, chunk: Uint8Array, endOfStream: boolean) {
    return this.result(s, { op: 'requestBody', stream: s.id, chunk, endOfStream });
  }
  requestTrailers(s: FilterStream, trailers: HeaderPairs) {
    return this.result(s, { op: 'requestTrailers', stream: s.id, trailers });
  }
  /** A whole response at once (headers, then body with end-of-stream, then finish): one message. */
  response(s: FilterStream, headers: HeaderPairs, body: Uint8Array) {
    return this.result(s, { op: 'response', stream: s.id, headers, body, finish: true });
  }

  /** With `endOfStream`, the stream is also finished in the same message when nothing else is pending. */
  responseHeaders(s: FilterStream, headers: HeaderPairs, endOfStream: boolean) {
    return this.result(s, { op: 'responseHeaders', stream: s.id, headers, endOfStream, finish: endOfStream });
  }
  responseBody(s: FilterStream, chunk: Uint8Array, endOfStream: boolean) {
    return this.result(s, { op: 'responseBody', stream: s.id, chunk, endOfStream, finish: endOfStream });
  }
  responseTrailers(s: FilterStream, trailers: HeaderPairs) {
    return this.result(s, { op: 'responseTrailers', stream: s.id, trailers });
  }
  httpCallResponse(s: FilterStream, call: HttpCallRequest, response?: { headers: HeaderPairs; body: Uint8Array; trailers: HeaderPairs }) {
    return this.result(s, { op: 'httpCallResponse', call, ...(response ? { response } : {}) });
  }

  async finish(s: FilterStream): Promise<void> {
    if (s.vm.failed || s.finished) return;
    s.finished = true;
    await s.vm.call({ op: 'finish', stream: s.id }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    clearTimeout(this.tickTimer);
    await this.vm?.stop();
  }
}
