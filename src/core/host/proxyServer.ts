import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HeaderPairs } from './abi';
import { FilterFailedError, type CallbackResult, type FilterRuntime, type FilterStream } from './filterRuntime';
import type { HttpCallRequest } from './vm';

export interface ProxyOptions {
  port?: number;
  host?: string;
  /** Where requests go after the filter: an http:// URL. */
  upstream: string;
  /** Named upstreams (Envoy clusters) that `proxy_http_call` may call: name → http:// URL. */
  clusters?: Record<string, string>;
  /** When the filter fails: answer 500 (closed, the default) or pass the request through unfiltered (open). */
  failStrategy?: 'closed' | 'open';
  onEvent?: (line: string) => void;
}

export interface RunningProxy {
  url: string;
  port: number;
  /** Swaps the filter (after a rebuild); streams in flight finish on the old one. */
  setRuntime(runtime: FilterRuntime): void;
  close(): Promise<void>;
}

/** Responses up to this size (by content-length) are read whole before the filter sees them. */
const WHOLE_RESPONSE_LIMIT = 64 * 1024;

// Hop-by-hop headers are the proxy's business, not the filter's or the upstream's.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function requestPairs(req: http.IncomingMessage): HeaderPairs {
  const pairs: HeaderPairs = [
    [':method', req.method ?? 'GET'],
    [':path', req.url ?? '/'],
    [':authority', req.headers.host ?? ''],
    [':scheme', 'http'],
  ];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name === 'host' || HOP_BY_HOP.has(name)) continue;
    pairs.push([name, req.rawHeaders[i + 1]!]);
  }
  return pairs;
}

function responsePairs(res: http.IncomingMessage): HeaderPairs {
  const pairs: HeaderPairs = [[':status', String(res.statusCode ?? 502)]];
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    const name = res.rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name)) continue;
    pairs.push([name, res.rawHeaders[i + 1]!]);
  }
  return pairs;
}

function plainHeaders(pairs: HeaderPairs, drop: string[] = []): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of pairs) {
    const key = k.toLowerCase();
    if (key.startsWith(':') || drop.includes(key) || HOP_BY_HOP.has(key)) continue;
    const prev = out[key];
    out[key] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function pseudo(pairs: HeaderPairs, name: string): string | undefined {
  return pairs.find(([k]) => k === name)?.[1];
}

/**
 * An HTTP/1.1 proxy that runs every request and response through a proxy-wasm filter, as Envoy's HTTP
 * filter chain would: headers, body chunks (buffered only while the filter pauses), trailers; local
 * replies; HTTP callouts to named upstreams that resume a paused stream.
 */
export async function startProxy(initial: FilterRuntime | undefined, options: ProxyOptions): Promise<RunningProxy> {
  let runtime: FilterRuntime | undefined = initial;
  const upstream = new URL(options.upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const event = options.onEvent ?? (() => undefined);

  /** Runs the callouts a callback asked for, feeding each response back, until the stream continues. */
  async function settle(filter: FilterRuntime, stream: FilterStream, result: CallbackResult, direction: 'request' | 'response'): Promise<CallbackResult> {
    let current = result;
    const queue: HttpCallRequest[] = [...current.calls];
    while (queue.length) {
      const call = queue.shift()!;
      const response = await callout(call);
      const next = await filter.httpCallResponse(stream, call, response);
      queue.push(...next.calls);
      if (next.stream) current = { action: next.stream.continued[direction] ? 0 : current.action, stream: next.stream, calls: [] };
      if (next.stream?.localResponse) break;
    }
    return current;
  }

  async function callout(call: HttpCallRequest): Promise<{ headers: HeaderPairs; body: Uint8Array; trailers: HeaderPairs } | undefined> {
    const base = options.clusters?.[call.upstream];
    if (!base) {
      event(`http call to unknown upstream "${call.upstream}" (add --cluster ${call.upstream}=URL); the filter gets a failed call`);
      return undefined;
    }
    const url = new URL(pseudo(call.headers, ':path') ?? '/', base);
    return new Promise((resolve) => {
      const req = http.request(
        url,
        { method: pseudo(call.headers, ':method') ?? 'GET', headers: { ...plainHeaders(call.headers), host: pseudo(call.headers, ':authority') ?? url.host }, timeout: call.timeoutMs || 5000, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: responsePairs(res), body: Buffer.concat(chunks), trailers: [] }));
          res.on('error', () => resolve(undefined));
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
      req.end(call.body);
    });
  }

  function sendLocal(res: http.ServerResponse, local: NonNullable<CallbackResult['stream']['localResponse']>): void {
    const body = Buffer.from(local.body);
    res.writeHead(local.status || 200, { ...plainHeaders(local.headers, ['content-length']), 'content-length': String(body.length) });
    res.end(body);
  }

  function failResponse(res: http.ServerResponse, err: FilterFailedError): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `The filter failed in ${err.callback}: ${err.message}\n`;
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'x-wasm-filter-error': err.callback });
    res.end(body);
  }

  async function passThrough(req: http.IncomingMessage, res: http.ServerResponse, body?: Buffer): Promise<void> {
    const up = http.request(new URL(req.url ?? '/', upstream), { method: req.method ?? 'GET', headers: { ...plainHeaders(requestPairs(req)), host: req.headers.host ?? upstream.host }, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, plainHeaders(responsePairs(ur)));
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    if (body) up.end(body);
    else req.pipe(up);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const filter = runtime;
    // Without a filter this is the plain proxy (the baseline the benchmark compares against).
    if (!filter) return passThrough(req, res);
    let stream: FilterStream | undefined;
    const received: Buffer[] = [];
    try {
      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      const begun = await filter.begin(
        {
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          authority: req.headers.host ?? '',
          scheme: 'http',
          protocol: `HTTP/${req.httpVersion}`,
          sourceAddress: req.socket.remoteAddress ?? '',
          sourcePort: req.socket.remotePort ?? 0,
          destinationAddress: req.socket.localAddress ?? '',
          destinationPort: req.socket.localPort ?? 0,
        },
        requestPairs(req),
        !hasBody,
      );
      stream = begun.stream;
      let r = await settle(filter, stream, begun.result, 'request');
      if (r.stream.localResponse) return sendLocal(res, r.stream.localResponse);
      let headersReleased = r.action === 0;
      const requestHeaders = () => r.stream.requestHeaders;

      // The upstream request starts once the filter lets the headers go.
      let upstreamReq: http.ClientRequest | undefined;
      let openUpstream: () => void = () => undefined;
      const upstreamResponse = new Promise<http.IncomingMessage>((resolve, reject) => {
        const open = () => {
          const h = requestHeaders();
          const target = new URL(pseudo(h, ':path') ?? req.url ?? '/', upstream);
          upstreamReq = http.request(target, { method: pseudo(h, ':method') ?? req.method ?? 'GET', headers: { ...plainHeaders(h, ['content-length']), host: pseudo(h, ':authority') ?? upstream.host }, agent }, resolve);
          upstreamReq.on('error', reject);
        };
        openUpstream = open;
      });
      // Awaited below; this only keeps an early local reply from leaving a rejection unhandled.
      upstreamResponse.catch(() => undefined);
      if (headersReleased) openUpstream();

      // Request body: chunk by chunk, buffered by the filter while it pauses.
      let pending: Buffer = Buffer.alloc(0);
      // (A request without a body skips the loop: iterating an empty stream still costs a few event-loop turns.)
      if (hasBody) for await (const chunk of req) {
        received.push(chunk as Buffer);
        // Body callbacks run once the headers are through (as in Envoy, data waits behind paused headers).
        // One chunk is held back so that the last one goes with end-of-stream: a round trip to the VM less.
        if (headersReleased && pending.length) {
          r = await settle(filter, stream, await filter.requestBody(stream, pending, false), 'request');
          if (r.stream.localResponse) return sendLocal(res, r.stream.localResponse);
          if (r.action === 0) upstreamReq!.write(Buffer.from(r.stream.requestBody));
          pending = chunk as Buffer;
        } else pending = Buffer.concat([pending, chunk as Buffer]);
      }
      if (!headersReleased) {
        headersReleased = true;
        openUpstream();
      }
      if (hasBody) {
        r = await settle(filter, stream, await filter.requestBody(stream, pending, true), 'request');
        if (r.stream.localResponse) return sendLocal(res, r.stream.localResponse);
        upstreamReq!.end(Buffer.from(r.stream.requestBody));
      } else {
        upstreamReq!.end();
      }

      const ur = await upstreamResponse;
      const responseHasBody = req.method !== 'HEAD' && ur.statusCode !== 204 && ur.statusCode !== 304;
      const declared = Number(ur.headers['content-length'] ?? NaN);
      if (responseHasBody && declared >= 0 && declared <= WHOLE_RESPONSE_LIMIT) {
        // A small response is read whole and goes through the filter in one call to the VM (headers, then
        // the body with end-of-stream), which is most of what a filter's cost per request is.
        const chunks: Buffer[] = [];
        for await (const chunk of ur) chunks.push(chunk as Buffer);
        const whole = await filter.response(stream, responsePairs(ur), Buffer.concat(chunks));
        const done = await settle(filter, stream, whole, 'response');
        if (done.stream.localResponse) return sendLocal(res, done.stream.localResponse);
        const out = Buffer.from(done.stream.responseBody);
        const h = done.stream.responseHeaders;
        res.writeHead(Number(pseudo(h, ':status') ?? ur.statusCode ?? 200), { ...plainHeaders(h, ['content-length']), 'content-length': String(out.length) });
        res.end(out);
        return;
      }
      let rr = await settle(filter, stream, await filter.responseHeaders(stream, responsePairs(ur), !responseHasBody), 'response');
      if (rr.stream.localResponse) {
        ur.resume();
        return sendLocal(res, rr.stream.localResponse);
      }
      // The head goes out with the first body bytes, so that a body that arrives whole (the usual case) is
      // sent with a content-length in one write rather than chunked.
      let headWritten = false;
      const writeHead = (contentLength?: number) => {
        const h = rr.stream.responseHeaders;
        const headers = plainHeaders(h, ['content-length']);
        if (contentLength !== undefined) headers['content-length'] = String(contentLength);
        res.writeHead(Number(pseudo(h, ':status') ?? ur.statusCode ?? 200), headers);
        headWritten = true;
      };
      const responseReleased = rr.action === 0;
      let held: Buffer = Buffer.alloc(0);
      for await (const chunk of ur) {
        if (responseReleased && held.length) {
          rr = await settle(filter, stream, await filter.responseBody(stream, held, false), 'response');
          if (rr.action === 0) {
            if (!headWritten) writeHead();
            res.write(Buffer.from(rr.stream.responseBody));
          }
          held = chunk as Buffer;
        } else held = Buffer.concat([held, chunk as Buffer]);
      }
      let last: Buffer = Buffer.alloc(0);
      if (responseHasBody) {
        rr = await settle(filter, stream, await filter.responseBody(stream, held, true), 'response');
        last = Buffer.from(rr.stream.responseBody);
      }
      if (!headWritten) writeHead(responseHasBody ? last.length : undefined);
      res.end(last);
    } catch (err) {
      if (err instanceof FilterFailedError) {
        event(`filter failed: ${err.message}`);
        if (options.failStrategy === 'open') {
          for await (const chunk of req) received.push(chunk as Buffer);
          await passThrough(req, res, Buffer.concat(received));
        } else failResponse(res, err);
        return;
      }
      event(`request failed: ${(err as Error).message}`);
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`upstream error: ${(err as Error).message}\n`);
      } else res.destroy();
    } finally {
      if (stream) void filter.finish(stream);
    }
  }

  const server = http.createServer((req, res) => {
    void handle(req, res);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    setRuntime(next) {
      const old = runtime;
      runtime = next;
      // Streams in flight hold their own VM; the old runtime stops once they are likely done.
      if (old) setTimeout(() => void old.stop(), 10_000).unref();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
      await runtime?.stop();
    },
  };
}

/** The built-in upstream: answers every request with what it received, as JSON (like httpbin's /anything). */
export async function startEchoUpstream(port = 0, host = '127.0.0.1'): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const text = JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body }, null, 2) + '\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'x-echo-upstream': 'wasm-filter' });
    res.end(text);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${p}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
