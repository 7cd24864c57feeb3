import { UserError } from '../errors';
import { headerValue, type HttpResponse } from './http';

/** What the client was doing, for messages: "pushing blob sha256:… to 127.0.0.1:5000/alice/filter". */
export interface Operation {
  registry: string;
  repository?: string;
  /** e.g. "push manifest", "pull blob sha256:abcd…", "list tags" */
  action: string;
}

/** A registry said no. The message names the registry, the repository, the operation and the HTTP status. */
export class RegistryError extends UserError {
  constructor(
    message: string,
    hint: string | undefined,
    code: string,
    readonly operation: Operation,
    readonly status?: number,
    readonly registryCodes: string[] = [],
  ) {
    super(message, hint, code);
    this.name = 'RegistryError';
  }
}

function where(op: Operation): string {
  return op.repository ? `${op.registry}/${op.repository}` : op.registry;
}

/** The `errors` array of the distribution spec's error body, if the registry sent one. */
export function registryErrorCodes(response: HttpResponse): { codes: string[]; text: string } {
  try {
    const body = JSON.parse(response.body.toString('utf8')) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    const errors = body.errors ?? [];
    return {
      codes: errors.map((e) => String(e.code ?? '')).filter(Boolean),
      text: errors
        .map((e) => [e.code, e.message].filter(Boolean).join(': '))
        .join('; ')
        .slice(0, 300),
    };
  } catch {
    const text = response.body.toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 200);
    return { codes: [], text: /^</.test(text) ? '' : text };
  }
}

/** Turns an unexpected status into an error that says what happened and what to do. */
export function errorForResponse(op: Operation, response: HttpResponse, context: { hadCredentials?: boolean; credentialSource?: string; mediaType?: string } = {}): RegistryError {
  const { codes, text } = registryErrorCodes(response);
  const status = response.status;
  const detail = text ? ` (${text})` : '';
  const head = `${op.action} at ${where(op)} failed: HTTP ${status}${detail}.`;
  const make = (hint: string | undefined, code: string) => new RegistryError(head, hint, code, op, status, codes);
  switch (status) {
    case 401:
      return context.hadCredentials
        ? new RegistryError(
            `${where(op)} rejected the credentials${context.credentialSource ? ` from ${context.credentialSource}` : ''} for ${op.action} (HTTP 401${detail}).`,
            `Log in again: wasm-filter login ${op.registry}`,
            'E_CREDENTIALS_REJECTED',
            op,
            status,
            codes,
          )
        : new RegistryError(
            `${where(op)} needs you to log in for ${op.action} (HTTP 401${detail}).`,
            `Run: wasm-filter login ${op.registry}`,
            'E_LOGIN_REQUIRED',
            op,
            status,
            codes,
          );
    case 403:
      return make(
        op.registry === 'webassemblyhub.io'
          ? 'Your account may not write to this repository. On WebAssembly Hub, images go under your own user name: tag the image as webassemblyhub.io/<your user>/<name>:<tag>.'
          : 'Your account is not allowed to do this in that repository. Check the repository name and your permissions on the registry.',
        'E_DENIED',
      );
    case 404:
      if (codes.includes('NAME_UNKNOWN')) {
        return make(`The repository ${op.repository ?? ''} does not exist on ${op.registry}. Check the name (and, on WebAssembly Hub, that your user is registered).`, 'E_NOT_FOUND');
      }
      if (codes.includes('MANIFEST_UNKNOWN')) return make('No image with that tag or digest exists there. List the tags with `wasm-filter list --published -s ' + op.registry + '`.', 'E_NOT_FOUND');
      if (codes.includes('BLOB_UNKNOWN')) return make('The registry lost a blob the image needs; push the image again.', 'E_NOT_FOUND');
      return make(`Nothing was found there. Check the repository name${op.registry === 'webassemblyhub.io' ? ' and that your user is registered on WebAssembly Hub' : ''}.`, 'E_NOT_FOUND');
    case 405:
      return make(
        op.action.startsWith('delete')
          ? 'This registry does not allow deletes (for docker-registry, set storage.delete.enabled: true).'
          : 'This registry does not support that operation on this repository. Some registries need the repository created first.',
        'E_NOT_ALLOWED',
      );
    case 400:
    case 415:
      if (/HTTP request to an HTTPS server/i.test(response.body.toString('utf8'))) {
        return make('The registry speaks HTTPS on this port: drop --plain-http, and add --insecure if its certificate is self-signed.', 'E_NEEDS_TLS');
      }
      if (codes.includes('MANIFEST_INVALID') || codes.includes('UNSUPPORTED') || status === 415) {
        return make(
          `The registry refuses this image${context.mediaType ? ` (media type ${context.mediaType})` : ''}. Registries that only take container images accept the "compat" variant: rebuild with --variant compat and push again.`,
          'E_UNSUPPORTED_MEDIA_TYPE',
        );
      }
      if (codes.includes('DIGEST_INVALID') || codes.includes('SIZE_INVALID')) {
        return make('The registry computed another digest or size for what was sent; the upload was corrupted on the way. Push again.', 'E_DIGEST_INVALID');
      }
      return make(undefined, 'E_BAD_REQUEST');
    case 413:
      return make('The registry refuses blobs this large.', 'E_TOO_LARGE');
    case 429:
      return make(`The registry is rate-limiting requests${retryAfterText(response)}. Wait and try again.`, 'E_RATE_LIMITED');
    default:
      if (status >= 500) return make('The registry had an internal error and kept failing after retries. Try again later.', 'E_REGISTRY_UNAVAILABLE');
      return make(undefined, 'E_REGISTRY');
  }
}

function retryAfterText(response: HttpResponse): string {
  const v = headerValue(response.headers, 'retry-after');
  return v ? ` (retry after ${v} s)` : '';
}

/** Below HTTP: what to do about refused connections, TLS and timeouts. */
export function errorForTransport(op: Operation, err: Error & { code?: string }, scheme: 'http' | 'https'): RegistryError {
  const hint = (() => {
    switch (err.code) {
      case 'ECONNREFUSED':
        return `Check that the registry runs at ${op.registry}${scheme === 'https' ? '; if it serves plain HTTP, add --plain-http' : ''}.`;
      case 'ENOTFOUND':
        return 'Check the registry host name.';
      case 'EPROTO':
        return 'The registry seems to serve plain HTTP: add --plain-http.';
      case 'ECERT':
        return 'If you trust this registry, add --insecure (accepts a self-signed certificate), or add its CA to NODE_EXTRA_CA_CERTS.';
      case 'ETIMEDOUT':
        return 'The registry may be overloaded or unreachable; try again.';
      default:
        return 'Check the network and try again.';
    }
  })();
  return new RegistryError(`${op.action} at ${where(op)} failed: ${err.message}.`, hint, 'E_REGISTRY_UNREACHABLE', op);
}
