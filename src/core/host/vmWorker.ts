// Runs one proxy-wasm VM in a worker thread, so that a runaway filter can be stopped (the main thread
// terminates the worker) without stopping the proxy. Messages in and out are plain data.
import { parentPort, workerData } from 'node:worker_threads';
import type { HeaderPairs } from './abi';
import { ProxyWasmVm, VmFailure, type FilterLog, type HttpCallRequest, type LocalResponse, type StreamInfo, type StreamState, type VmOptions } from './vm';

export interface VmWorkerData {
  wasm: Uint8Array;
  options: Omit<VmOptions, 'onLog' | 'shared' | 'now'>;
}

export type VmRequest =
  | { id: number; op: 'create'; info: StreamInfo }
  /** create + request headers in one message: the common start of every stream. */
  | { id: number; op: 'begin'; info: StreamInfo; headers: HeaderPairs; endOfStream: boolean }
  | { id: number; op: 'requestHeaders' | 'responseHeaders'; stream: number; headers: HeaderPairs; endOfStream: boolean; finish?: boolean }
  /** A whole, small response in one message: headers, then the body with end-of-stream, then finish. */
  | { id: number; op: 'response'; stream: number; headers: HeaderPairs; body: Uint8Array; finish?: boolean }
  | { id: number; op: 'requestBody' | 'responseBody'; stream: number; chunk: Uint8Array; endOfStream: boolean; finish?: boolean }
  | { id: number; op: 'requestTrailers' | 'responseTrailers'; stream: number; trailers: HeaderPairs }
  | { id: number; op: 'httpCallResponse'; call: HttpCallRequest; response?: { headers: HeaderPairs; body: Uint8Array; trailers: HeaderPairs } }
  | { id: number; op: 'finish'; stream: number }
  | { id: number; op: 'tick' };

/** The state of a stream after a callback, for the proxy to act on. */
export interface StreamSnapshot {
  id: number;
  requestHeaders: HeaderPairs;
  responseHeaders: HeaderPairs;
  requestTrailers: HeaderPairs;
  responseTrailers: HeaderPairs;
  requestBody: Uint8Array;
  responseBody: Uint8Array;
  localResponse?: LocalResponse;
  continued: { request: boolean; response: boolean };
  closed: boolean;
}

export interface VmReply {
  id: number;
  /** For 'response': what the header callback returned (`action` is the body callback's). */
  headersAction?: number;
  /** The stream was finished (on_done, on_log, on_delete) right after this callback, as asked. */
  finished?: boolean;
  action?: number;
  stream?: StreamSnapshot;
  calls: HttpCallRequest[];
  logs: FilterLog[];
  tickPeriodMs: number;
  failure?: { message: string; callback: string };
}

export type VmStartReply = { ok: true; abi: string; tickPeriodMs: number; logs: FilterLog[] } | { ok: false; error: string; logs: FilterLog[] };

function snapshot(s: StreamState): StreamSnapshot {
  return {
    id: s.id,
    requestHeaders: s.requestHeaders,
    responseHeaders: s.responseHeaders,
    requestTrailers: s.requestTrailers,
    responseTrailers: s.responseTrailers,
    requestBody: s.requestBody,
    responseBody: s.responseBody,
    ...(s.localResponse ? { localResponse: s.localResponse } : {}),
    continued: { ...s.continued },
    closed: s.closed,
  };
}

/**
 * One VM and the message protocol around it. The worker thread serves it over messages; the in-process
 * host (no isolation) calls it directly.
 */
export function createVmSession(data: Omit<VmWorkerData, never>): { started: VmStartReply; handle(req: VmRequest): VmReply } {
  let logs: FilterLog[] = [];
  let started: VmStartReply;
  let vm: ProxyWasmVm | undefined;
  try {
    const module = ProxyWasmVm.compile(data.wasm, data.options.maxMemoryPages);
    vm = ProxyWasmVm.create(module, { ...data.options, onLog: (l) => logs.push(l) });
    const ok = vm.start();
    started = ok ? { ok: true, abi: vm.abi, tickPeriodMs: vm.tickPeriodMs, logs } : { ok: false, error: logs.at(-1)?.message ?? 'the filter did not start', logs };
  } catch (err) {
    started = { ok: false, error: (err as Error).message, logs };
    vm = undefined;
  }
  logs = [];

  const handle = (req: VmRequest): VmReply => {
    const reply: VmReply = { id: req.id, calls: [], logs: [], tickPeriodMs: vm?.tickPeriodMs ?? 0 };
    try {
      if (!vm) throw new VmFailure('the VM did not start', 'start');
      let stream: StreamState | undefined;
      switch (req.op) {
        case 'create':
          stream = vm.createStream(req.info);
          break;
        case 'response': {
          stream = vm.stream(req.stream);
          if (!stream) break;
          const body = Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength);
          const headersAction = vm.onResponseHeaders(stream, req.headers, body.length === 0);
          reply.headersAction = headersAction;
          reply.action = !stream.localResponse && body.length > 0 ? vm.onResponseBody(stream, body, true) : headersAction;
          break;
        }
        case 'begin':
          stream = vm.createStream(req.info);
          reply.action = vm.onRequestHeaders(stream, req.headers, req.endOfStream);
          break;
        case 'requestHeaders':
        case 'responseHeaders':
          stream = vm.stream(req.stream);
          if (stream) reply.action = req.op === 'requestHeaders' ? vm.onRequestHeaders(stream, req.headers, req.endOfStream) : vm.onResponseHeaders(stream, req.headers, req.endOfStream);
          break;
        case 'requestBody':
        case 'responseBody': {
          stream = vm.stream(req.stream);
          const chunk = Buffer.from(req.chunk.buffer, req.chunk.byteOffset, req.chunk.byteLength);
          if (stream) reply.action = req.op === 'requestBody' ? vm.onRequestBody(stream, chunk, req.endOfStream) : vm.onResponseBody(stream, chunk, req.endOfStream);
          break;
        }
        case 'requestTrailers':
        case 'responseTrailers':
          stream = vm.stream(req.stream);
          if (stream) reply.action = req.op === 'requestTrailers' ? vm.onRequestTrailers(stream, req.trailers) : vm.onResponseTrailers(stream, req.trailers);
          break;
        case 'httpCallResponse':
          vm.onHttpCallResponse(
            req.call,
            req.response ? { headers: req.response.headers, body: Buffer.from(req.response.body), trailers: req.response.trailers } : undefined,
          );
          stream = vm.stream(req.call.contextId);
          break;
        case 'finish': {
          const s = vm.stream(req.stream);
          if (s) vm.finishStream(s);
          break;
        }
        case 'tick':
          vm.onTick();
          for (const q of vm.readyQueues.splice(0)) vm.onQueueReady(q);
          break;
      }
      if (stream) {
        reply.stream = snapshot(stream);
        // The last callback of a stream can finish it in the same message, unless a callout is still open.
        if ('finish' in req && req.finish && vm.pendingCalls.length === 0 && reply.action === 0 && !stream.localResponse) {
          vm.finishStream(stream);
          reply.finished = true;
        }
        // What the proxy has now taken is consumed: body bytes go out, continue flags are one-shot.
        if (reply.action === 0 && (req.op === 'requestBody' || req.op === 'requestHeaders')) stream.requestBody = Buffer.alloc(0);
        if (reply.action === 0 && (req.op === 'responseBody' || req.op === 'responseHeaders' || req.op === 'response')) stream.responseBody = Buffer.alloc(0);
        stream.continued = { request: false, response: false };
      }
    } catch (err) {
      const failure = err instanceof VmFailure ? err : new VmFailure((err as Error).message, req.op === 'begin' ? 'proxy_on_request_headers' : req.op);
      reply.failure = { message: failure.message, callback: failure.callback };
    }
    reply.calls = vm ? vm.pendingCalls.splice(0) : [];
    reply.logs = logs;
    logs = [];
    return reply;
  };
  return { started, handle };
}

if (parentPort && workerData && (workerData as Partial<VmWorkerData>).wasm) {
  const port = parentPort;
  const session = createVmSession(workerData as VmWorkerData);
  port.postMessage(session.started);
  port.on('message', (req: VmRequest) => port.postMessage(session.handle(req)));
}
