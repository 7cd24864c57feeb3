import * as http from 'node:http';
import * as https from 'node:https';
import { CancelledError } from '../errors';

/** One HTTP exchange, with the whole response body in memory (registries' bodies are small or size-checked). */
export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string>;
  body?: Uint8Array;
  signal?: AbortSignal;
  /** Idle time without any bytes moving before the exchange fails. */
  timeoutMs?: number;
  /** Bodies larger than this fail the exchange before more is read. */
  maxResponseBytes?: number;
  /** Accept self-signed TLS certificates. */
  insecure?: boolean;
  onUploadProgress?: (bytesSent: number) => void;
  onDownloadProgress?: (bytesReceived: number) => void;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: URL;
}

/** A failure below HTTP: refused, reset, timed out, TLS. `retryable` says whether trying again may help. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/** A response larger than the caller allows. */
export class ResponseTooLargeError extends Error {
  constructor(
    readonly url: URL,
    readonly limit: number,
  ) {
    super(`the response from ${url.host} is larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

// Keep-alive agents: pushing many blobs to one registry reuses its connections.
const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 16 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 16 }),
  httpsInsecure: new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false }),
};

const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE']);
const UPLOAD_CHUNK = 1024 * 1024;

export function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  if (req.signal?.aborted) return Promise.reject(new CancelledError());
  const isHttps = req.url.protocol === 'https:';
  const lib = isHttps ? https : http;
  const agent = isHttps ? (req.insecure ? agents.httpsInsecure : agents.https) : agents.http;
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...req.headers };
  if (req.body) headers['content-length'] = String(req.body.length);
  else if (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH') headers['content-length'] = '0';

  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      request.destroy();
      reject(err);
    };
    const onAbort = () => fail(new CancelledError());
    req.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => req.signal?.removeEventListener('abort', onAbort);

    const request = lib.request(req.url, { method: req.method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (req.maxResponseBytes !== undefined && received > req.maxResponseBytes) {
          fail(new ResponseTooLargeError(req.url, req.maxResponseBytes));
          return;
        }
        chunks.push(chunk);
        req.onDownloadProgress?.(received);
      });
      res.on('end', () => {
        if (settled) return;
        if (!res.complete) {
          fail(new TransportError(`the connection to ${req.url.host} closed before the response was complete`, 'ECONNRESET', true));
          return;
        }
        settled = true;
        cleanup();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), url: req.url });
      });
      res.on('error', (err) => fail(toTransportError(err, req.url)));
      res.on('aborted', () => fail(new TransportError(`the connection to ${req.url.host} was cut during the response`, 'ECONNRESET', true)));
    });
    request.setTimeout(req.timeoutMs ?? 60_000, () => {
      fail(new TransportError(`${req.url.host} did not answer within ${Math.round((req.timeoutMs ?? 60_000) / 1000)} s`, 'ETIMEDOUT', true));
    });
    request.on('error', (err) => fail(toTransportError(err, req.url)));

    const body = req.body;
    if (!body || body.length === 0) {
      request.end();
      return;
    }
    // Written in slices so progress is reported as the bytes leave, not all at once.
    let offset = 0;
    const writeNext = () => {
      if (settled) return;
      if (offset >= body.length) {
        request.end();
        return;
      }
      const end = Math.min(offset + UPLOAD_CHUNK, body.length);
      const slice = body.subarray(offset, end);
      offset = end;
      const more = request.write(slice, () => req.onUploadProgress?.(end));
      if (more) setImmediate(writeNext);
      else request.once('drain', writeNext);
    };
    writeNext();
  });
}

function toTransportError(err: Error & { code?: string }, url: URL): TransportError {
  const code = err.code ?? 'EUNKNOWN';
  const host = url.host;
  switch (code) {
    case 'ECONNREFUSED':
      return new TransportError(`nothing is listening at ${url.protocol}//${host} (connection refused)`, code, false);
    case 'ENOTFOUND':
      return new TransportError(`the host name ${url.hostname} does not resolve`, code, false);
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return new TransportError(`${host} does not speak TLS on this port (${err.message})`, 'EPROTO', false);
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return new TransportError(`the TLS certificate of ${host} is not trusted (${code})`, 'ECERT', false);
    default:
      return new TransportError(`${host}: ${err.message}`, code, RETRYABLE_CODES.has(code));
  }
}

export const USER_AGENT = 'wasm-filter-studio';

export function headerValue(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
