import { sha256Digest, type Digest } from '../digest';
import { CancelledError } from '../errors';
import { MediaType } from '../mediaTypes';
import { RegistryAuth } from './auth';
import type { CredentialSource } from './credentials';
import { headerValue, httpRequest, ResponseTooLargeError, TransportError, type HttpRequest, type HttpResponse } from './http';
import { errorForResponse, errorForTransport, RegistryError, type Operation } from './registryErrors';

export interface RegistryClientOptions {
  credentials?: CredentialSource;
  /** Talk HTTP instead of HTTPS. Loopback registries default to plain HTTP, as docker and oras do. */
  plainHttp?: boolean;
  /** Accept a self-signed TLS certificate. */
  insecure?: boolean;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Attempts for a request that fails with 429, 5xx or a dropped connection (first try included). */
  attempts?: number;
  /** Base delay of the exponential backoff between attempts. */
  backoffMs?: number;
  /** Blobs larger than this are uploaded in chunks of `chunkSize` (PATCH) rather than in one PUT. */
  chunkThreshold?: number;
  chunkSize?: number;
}

export interface BlobProgress {
  digest: Digest;
  bytesDone: number;
  bytesTotal: number;
}

export interface Manifest {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
}

/** The media types a wasm filter image's manifest may have; an index is accepted only to report it clearly. */
export const MANIFEST_ACCEPT = [MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociIndex, 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** An upload session that cannot be finished correctly; the blob is uploaded again in a new one. */
const RESTART_UPLOAD = 'E_RESTART_UPLOAD';

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|[^:]+\.localhost)(:\d+)?$/;

/** Where the registry's API lives: Docker Hub's name differs from its API host. */
export function registryEndpoint(registry: string, plainHttp?: boolean, insecure?: boolean): URL {
  const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
  // --insecure means "TLS, unverified", so it implies HTTPS even on loopback.
  const scheme = (plainHttp ?? (insecure ? false : LOOPBACK.test(host))) ? 'http' : 'https';
  return new URL(`${scheme}://${host}/`);
}

/**
 * A small client of the OCI distribution API for one registry: blobs (check, upload monolithic or in
 * chunks, mount, fetch), manifests, tags, catalog and delete, with authentication, retries with
 * backoff, timeouts, cancellation and progress.
 */
export class RegistryClient {
  readonly base: URL;
  private readonly auth: RegistryAuth;
  private readonly attempts: number;
  private readonly backoffMs: number;
  readonly chunkThreshold: number;
  readonly chunkSize: number;
  /** Bytes of blob content sent to the registry by this client (what a second push must keep at 0). */
  uploadedBytes = 0;

  constructor(
    readonly registry: string,
    private readonly options: RegistryClientOptions = {},
  ) {
    this.base = registryEndpoint(registry, options.plainHttp, options.insecure);
    this.auth = new RegistryAuth(registry, options.credentials, {
      ...(options.insecure ? { insecure: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    });
    this.attempts = Math.max(1, options.attempts ?? 4);
    this.backoffMs = options.backoffMs ?? 250;
    this.chunkThreshold = options.chunkThreshold ?? 32 * 1024 * 1024;
    this.chunkSize = options.chunkSize ?? 16 * 1024 * 1024;
  }

  get scheme(): 'http' | 'https' {
    return this.base.protocol === 'http:' ? 'http' : 'https';
  }

  private url(path: string): URL {
    return new URL(path, this.base);
  }

  /**
   * Sends one request with authorization, answering a 401 challenge once, and retrying on 429, 5xx and
   * dropped connections with exponential backoff. `expect` lists the statuses that are success.
   */
  async send(
    op: Operation,
    request: Omit<HttpRequest, 'signal' | 'insecure'>,
    scopes: string[],
    expect: number[],
    context: { mediaType?: string; retry?: boolean } = {},
  ): Promise<HttpResponse> {
    const retry = context.retry ?? true;
    // One 401 teaches the scheme; a second may refuse a token that expired early. A third is final.
    let challenges = 0;
    for (let attempt = 1; ; attempt++) {
      if (this.options.signal?.aborted) throw new CancelledError(op.action);
      const authorization = await this.auth.header(scopes);
      let response: HttpResponse;
      try {
        response = await httpRequest({
          ...request,
          headers: { ...request.headers, ...(authorization ? { authorization } : {}) },
          ...(this.options.signal ? { signal: this.options.signal } : {}),
          ...(this.options.insecure ? { insecure: true } : {}),
          ...(this.options.timeoutMs ? { timeoutMs: this.options.timeoutMs } : {}),
        });
      } catch (err) {
        if (err instanceof TransportError) {
          if (err.retryable && retry && attempt < this.attempts) {
            await this.pause(attempt);
            continue;
          }
          throw errorForTransport(op, err, this.scheme);
        }
        if (err instanceof ResponseTooLargeError) {
          throw new RegistryError(`${op.action} at ${op.registry}: ${err.message}.`, 'The registry sent more than a filter image should hold; check the reference.', 'E_TOO_LARGE', op);
        }
        throw err;
      }
      if (expect.includes(response.status)) return response;
      if (response.status === 401 && challenges < 2) {
        challenges++;
        if (await this.auth.onUnauthorized(response, scopes, authorization)) {
          attempt--;
          continue;
        }
      }
      if (retry && (response.status === 429 || response.status >= 500) && attempt < this.attempts) {
        await this.pause(attempt, headerValue(response.headers, 'retry-after'));
        continue;
      }
      await this.auth.loadCredential();
      throw errorForResponse(op, response, {
        hadCredentials: this.auth.hasCredential,
        ...(this.auth.credentialDescription ? { credentialSource: this.auth.credentialDescription } : {}),
        ...(context.mediaType ? { mediaType: context.mediaType } : {}),
      });
    }
  }

  private async pause(attempt: number, retryAfter?: string): Promise<void> {
    const fromHeader = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    const backoff = this.backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
    const ms = Math.min(fromHeader ?? backoff, 30_000);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      this.options.signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(new CancelledError());
        },
        { once: true },
      );
    });
  }

  /** `GET /v2/`: reachable, and are the credentials good? */
  async ping(): Promise<void> {
    await this.send({ registry: this.registry, action: 'checking the registry' }, { method: 'GET', url: this.url('/v2/') }, [], [200]);
  }

  /**
   * Logs in: proves the credentials by getting through the registry's challenge at `/v2/` (a token
   * registry checks them at its token service). Says whether the registry asked for credentials at all.
   */
  async checkLogin(): Promise<{ challenged: boolean }> {
    const op = { registry: this.registry, action: 'logging in' };
    await this.send(op, { method: 'GET', url: this.url('/v2/') }, [], [200]);
    return { challenged: this.auth.challenged };
  }

  async blobExists(repository: string, digest: Digest): Promise<boolean> {
    const op = { registry: this.registry, repository, action: `checking blob ${digest}` };
    const response = await this.send(op, { method: 'HEAD', url: this.url(`/v2/${repository}/blobs/${digest}`) }, [pullScope(repository)], [200, 404]);
    return response.status === 200;
  }

  /** Fetches a blob, checking its size and digest before returning it. */
  async fetchBlob(repository: string, digest: Digest, size: number, onProgress?: (p: BlobProgress) => void): Promise<Buffer> {
    const op = { registry: this.registry, repository, action: `pulling blob ${digest}` };
    let url = this.url(`/v2/${repository}/blobs/${digest}`);
    let response = await this.send(
      op,
      { method: 'GET', url, maxResponseBytes: size, onDownloadProgress: (n) => onProgress?.({ digest, bytesDone: n, bytesTotal: size }) },
      [pullScope(repository)],
      [200, 307, 302, 303],
    );
    // Registries often redirect blob downloads to storage: follow without sending our credentials along.
    for (let hops = 0; response.status !== 200 && hops < 5; hops++) {
      const location = headerValue(response.headers, 'location');
      if (!location) throw new RegistryError(`${op.action} at ${this.registry}: a redirect without a Location.`, undefined, 'E_REGISTRY', op, response.status);
      url = new URL(location, url);
      try {
        response = await httpRequest({ method: 'GET', url, maxResponseBytes: size, ...(this.options.signal ? { signal: this.options.signal } : {}), ...(this.options.insecure ? { insecure: true } : {}) });
      } catch (err) {
        if (err instanceof TransportError) throw errorForTransport(op, err, this.scheme);
        if (err instanceof ResponseTooLargeError) throw mismatch(op, `is larger than the ${size} bytes the manifest declares`);
        throw err;
      }
      if (![200, 302, 303, 307].includes(response.status)) throw errorForResponse(op, response);
    }
    if (response.body.length !== size) throw mismatch(op, `has ${response.body.length} bytes, the manifest declares ${size}`);
    const actual = sha256Digest(response.body);
    if (actual !== digest) throw mismatch(op, `has digest ${actual}`);
    return response.body;
  }

  /**
   * Uploads a blob unless the repository already has it. Tries a cross-repository mount from `mountFrom`
   * first; uploads in one PUT, or in PATCH chunks for large blobs, resuming after a dropped connection.
   * Returns how the blob got there.
   */
  async pushBlob(
    repository: string,
    data: Uint8Array,
    options: { mountFrom?: string[]; onProgress?: (p: BlobProgress) => void } = {},
  ): Promise<'exists' | 'mounted' | 'uploaded'> {
    const digest = sha256Digest(data);
    if (await this.blobExists(repository, digest)) {
      options.onProgress?.({ digest, bytesDone: data.length, bytesTotal: data.length });
      return 'exists';
    }
    const op = { registry: this.registry, repository, action: `pushing blob ${digest}` };
    for (const from of options.mountFrom ?? []) {
      if (from === repository) continue;
      const url = this.url(`/v2/${repository}/blobs/uploads/`);
      url.searchParams.set('mount', digest);
      url.searchParams.set('from', from);
      const r = await this.send(op, { method: 'POST', url }, [pushScope(repository), pullScope(from)], [201, 202]);
      if (r.status === 201) {
        options.onProgress?.({ digest, bytesDone: data.length, bytesTotal: data.length });
        return 'mounted';
      }
      // 202: the registry opened an ordinary upload instead; abandon it and upload below.
      await this.cancelUpload(repository, headerValue(r.headers, 'location'));
    }
    // A failed upload is started again from scratch a few times: a half-done session is never finished wrongly.
    for (let attempt = 1; ; attempt++) {
      try {
        if (data.length > this.chunkThreshold) await this.uploadChunked(repository, digest, data, options.onProgress);
        else await this.uploadMonolithic(repository, digest, data, options.onProgress);
        return 'uploaded';
      } catch (err) {
        const restartable = err instanceof RegistryError && (err.code === 'E_REGISTRY_UNREACHABLE' || err.code === RESTART_UPLOAD);
        if (restartable && attempt < this.attempts && !this.options.signal?.aborted) {
          await this.pause(attempt);
          continue;
        }
        throw err;
      }
    }
  }

  private async startUpload(repository: string): Promise<URL> {
    const op = { registry: this.registry, repository, action: 'starting a blob upload' };
    const r = await this.send(op, { method: 'POST', url: this.url(`/v2/${repository}/blobs/uploads/`) }, [pushScope(repository)], [202]);
    const location = headerValue(r.headers, 'location');
    if (!location) throw new RegistryError(`${this.registry} opened an upload without saying where to send it (no Location).`, undefined, 'E_REGISTRY', op, 202);
    return new URL(location, this.base);
  }

  private async uploadMonolithic(repository: string, digest: Digest, data: Uint8Array, onProgress?: (p: BlobProgress) => void): Promise<void> {
    const op = { registry: this.registry, repository, action: `pushing blob ${digest}` };
    const url = await this.startUpload(repository);
    url.searchParams.set('digest', digest);
    await this.send(
      op,
      { method: 'PUT', url, body: data, headers: { 'content-type': 'application/octet-stream' }, onUploadProgress: (n) => onProgress?.({ digest, bytesDone: n, bytesTotal: data.length }) },
      [pushScope(repository)],
      [201],
      // The upload session is spent once the body left; a retry starts a new session (see pushBlob).
      { retry: false },
    );
    this.uploadedBytes += data.length;
  }

  private async uploadChunked(repository: string, digest: Digest, data: Uint8Array, onProgress?: (p: BlobProgress) => void): Promise<void> {
    const op = { registry: this.registry, repository, action: `pushing blob ${digest} in chunks` };
    let url = await this.startUpload(repository);
    let offset = 0;
    let resumes = 0;
    while (offset < data.length) {
      const end = Math.min(offset + this.chunkSize, data.length);
      const chunk = data.subarray(offset, end);
      try {
        const r = await this.send(
          op,
          {
            method: 'PATCH',
            url,
            body: chunk,
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end - 1}` },
            onUploadProgress: (n) => onProgress?.({ digest, bytesDone: offset + n, bytesTotal: data.length }),
          },
          [pushScope(repository)],
          [202],
          { retry: false },
        );
        this.uploadedBytes += chunk.length;
        url = new URL(headerValue(r.headers, 'location') ?? url.href, this.base);
        offset = end;
      } catch (err) {
        // The connection dropped mid-chunk: ask the registry how much it kept and go on from there.
        if (!(err instanceof RegistryError && err.code === 'E_REGISTRY_UNREACHABLE') || resumes >= this.attempts) throw err;
        resumes++;
        await this.pause(resumes);
        const status = await this.uploadStatus(repository, url);
        if (!status) throw err; // the session is gone: pushBlob starts over
        url = status.url;
        offset = status.nextOffset;
      }
    }
    const finish = new URL(url.href);
    finish.searchParams.set('digest', digest);
    try {
      await this.send(op, { method: 'PUT', url: finish, headers: { 'content-type': 'application/octet-stream' } }, [pushScope(repository)], [201]);
    } catch (err) {
      // The registry checks the digest, so a resume that went wrong is caught here: start over, not fail.
      if (resumes > 0 && err instanceof RegistryError && err.code === 'E_DIGEST_INVALID') {
        await this.cancelUpload(repository, url.href);
        throw new RegistryError(err.message, err.hint, RESTART_UPLOAD, err.operation, err.status);
      }
      throw err;
    }
  }

  /** `GET <upload URL>`: how many bytes the registry holds of an upload session, from its `Range` header. */
  private async uploadStatus(repository: string, url: URL): Promise<{ url: URL; nextOffset: number } | undefined> {
    const op = { registry: this.registry, repository, action: 'checking an upload' };
    try {
      const r = await this.send(op, { method: 'GET', url }, [pushScope(repository)], [204, 404]);
      if (r.status === 404) return undefined;
      const range = headerValue(r.headers, 'range');
      const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range) : undefined;
      // "0-0" means nothing as well as one byte (distribution writes both so); taking it as nothing is
      // safe, because a wrong guess fails the digest check at the end and the upload starts over.
      const last = m ? Number(m[1]) : 0;
      return { url: new URL(headerValue(r.headers, 'location') ?? url.href, this.base), nextOffset: last === 0 ? 0 : last + 1 };
    } catch {
      return undefined;
    }
  }

  private async cancelUpload(repository: string, location: string | undefined): Promise<void> {
    if (!location) return;
    try {
      await this.send({ registry: this.registry, repository, action: 'cancelling an upload' }, { method: 'DELETE', url: new URL(location, this.base) }, [pushScope(repository)], [204, 404]);
    } catch {
      // An abandoned session expires on its own.
    }
  }

  async putManifest(repository: string, reference: string, manifest: Uint8Array, mediaType: string): Promise<Digest> {
    const op = { registry: this.registry, repository, action: `pushing manifest ${reference}` };
    const r = await this.send(
      op,
      { method: 'PUT', url: this.url(`/v2/${repository}/manifests/${reference}`), body: manifest, headers: { 'content-type': mediaType } },
      [pushScope(repository)],
      [201, 200],
      { mediaType },
    );
    const digest = sha256Digest(manifest);
    const reported = headerValue(r.headers, 'docker-content-digest');
    if (reported && reported !== digest) {
      throw new RegistryError(`${this.registry} stored the manifest under ${reported}, not its digest ${digest}.`, 'The registry rewrote the manifest; it cannot hold this image byte for byte.', 'E_DIGEST_INVALID', op);
    }
    return digest;
  }

  /** Fetches a manifest by tag or digest; its digest is checked when the reference is a digest. */
  async getManifest(repository: string, reference: string): Promise<Manifest> {
    const op = { registry: this.registry, repository, action: `pulling manifest ${reference}` };
    const r = await this.send(op, { method: 'GET', url: this.url(`/v2/${repository}/manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT }, maxResponseBytes: MAX_MANIFEST_BYTES }, [pullScope(repository)], [200]);
    const digest = sha256Digest(r.body);
    if (reference.startsWith('sha256:') && digest !== reference) throw mismatch(op, `has digest ${digest}`);
    const reported = headerValue(r.headers, 'docker-content-digest');
    if (!reference.startsWith('sha256:') && reported && reported !== digest) throw mismatch(op, `has digest ${digest}, the registry says ${reported}`);
    const mediaType = (headerValue(r.headers, 'content-type') ?? '').split(';')[0]!.trim() || mediaTypeOf(r.body);
    return { bytes: r.body, digest, mediaType };
  }

  /** `HEAD` a manifest: its digest and size without its body, or undefined when there is none. */
  async headManifest(repository: string, reference: string): Promise<{ digest: Digest; size: number; mediaType: string } | undefined> {
    const op = { registry: this.registry, repository, action: `checking manifest ${reference}` };
    const r = await this.send(op, { method: 'HEAD', url: this.url(`/v2/${repository}/manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT } }, [pullScope(repository)], [200, 404]);
    if (r.status === 404) return undefined;
    const digest = headerValue(r.headers, 'docker-content-digest');
    if (!digest) return this.headFromGet(repository, reference);
    return { digest: digest as Digest, size: Number(headerValue(r.headers, 'content-length') ?? 0), mediaType: (headerValue(r.headers, 'content-type') ?? '').split(';')[0]!.trim() };
  }

  private async headFromGet(repository: string, reference: string) {
    const m = await this.getManifest(repository, reference);
    return { digest: m.digest, size: m.bytes.length, mediaType: m.mediaType };
  }

  /** Every tag of a repository, following `Link` pages. */
  async listTags(repository: string, options: { pageSize?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    const op = { registry: this.registry, repository, action: 'listing tags' };
    const tags: string[] = [];
    for await (const page of this.pages<{ tags?: string[] | null }>(op, `/v2/${repository}/tags/list`, [pullScope(repository)], options.pageSize)) {
      tags.push(...(page.tags ?? []));
    }
    return tags;
  }

  /** One page of the catalog, and where the next one starts (for "load more" in a tree). */
  async catalogPage(options: { pageSize?: number; after?: string } = {}): Promise<{ repositories: string[]; next?: string }> {
    const op = { registry: this.registry, action: 'listing repositories' };
    const url = this.url('/v2/_catalog');
    url.searchParams.set('n', String(options.pageSize ?? 100));
    if (options.after) url.searchParams.set('last', options.after);
    const r = await this.send(op, { method: 'GET', url, maxResponseBytes: 16 * 1024 * 1024 }, ['registry:catalog:*'], [200]);
    const body = parseJson<{ repositories?: string[] }>(op, r.body);
    const next = nextLink(r, url);
    const repositories = body.repositories ?? [];
    return { repositories, ...(next && repositories.length ? { next: repositories.at(-1)! } : {}) };
  }

  /** The whole catalog, following `Link` pages. */
  async catalog(options: { pageSize?: number } = {}): Promise<string[]> {
    const op = { registry: this.registry, action: 'listing repositories' };
    const repositories: string[] = [];
    for await (const page of this.pages<{ repositories?: string[] }>(op, '/v2/_catalog', ['registry:catalog:*'], options.pageSize)) {
      repositories.push(...(page.repositories ?? []));
    }
    return repositories;
  }

  private async *pages<T>(op: Operation, path: string, scopes: string[], pageSize = 100): AsyncGenerator<T> {
    let url: URL | undefined = this.url(path);
    url.searchParams.set('n', String(pageSize));
    for (let i = 0; url && i < 100_000; i++) {
      const r = await this.send(op, { method: 'GET', url, maxResponseBytes: 16 * 1024 * 1024 }, scopes, [200]);
      yield parseJson<T>(op, r.body);
      url = nextLink(r, url);
    }
  }

  /** Deletes a manifest (and with it the tags that point at it), where the registry allows it. */
  async deleteManifest(repository: string, digest: Digest): Promise<void> {
    const op = { registry: this.registry, repository, action: `delete manifest ${digest}` };
    await this.send(op, { method: 'DELETE', url: this.url(`/v2/${repository}/manifests/${digest}`) }, [`repository:${repository}:delete`, pushScope(repository)], [202, 200, 204]);
  }
}

function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}
function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

function mismatch(op: Operation, what: string): RegistryError {
  return new RegistryError(
    `${op.action} from ${op.registry}${op.repository ? `/${op.repository}` : ''}: the content ${what}. Nothing was written to the store.`,
    'The registry (or something between it and you) altered the content. Try again; if it persists, the image in the registry is damaged: push it again.',
    'E_DIGEST_MISMATCH',
    op,
  );
}

function parseJson<T>(op: Operation, body: Buffer): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw new RegistryError(`${op.action} at ${op.registry}: the answer is not JSON.`, 'Is this an OCI registry? Check the address.', 'E_REGISTRY', op);
  }
}

/** `Link: </v2/_catalog?last=x&n=100>; rel="next"` */
function nextLink(response: HttpResponse, current: URL): URL | undefined {
  const link = headerValue(response.headers, 'link');
  if (!link) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  return m ? new URL(m[1]!, current) : undefined;
}

function mediaTypeOf(body: Buffer): string {
  try {
    return (JSON.parse(body.toString('utf8')) as { mediaType?: string }).mediaType ?? MediaType.ociManifest;
  } catch {
    return MediaType.ociManifest;
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

export { RegistryError };
