import { isDigest, type Digest } from './digest';
import { UserError } from './errors';

/** Where an image name without a registry goes, as it did with wasme. */
export const DEFAULT_REGISTRY = 'webassemblyhub.io';
export const DEFAULT_TAG = 'latest';

/**
 * An image reference in the OCI/Docker grammar: `[registry/]repository[:tag][@digest]`.
 * A parsed reference always has a registry; it has a tag, a digest, or both.
 */
export interface ImageReference {
  readonly registry: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

// The grammar of distribution/reference, written out once and explained.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN_COMPONENT = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const MAX_NAME_LENGTH = 255;

function badReference(input: string, why: string, hint?: string): UserError {
  return new UserError(
    `"${input}" is not a valid image reference: ${why}.`,
    hint ?? 'Use NAME[:TAG] or REGISTRY/NAME[:TAG], for example webassemblyhub.io/alice/add-header:v1.',
    'E_BAD_REFERENCE',
  );
}

function isRegistryHost(component: string): boolean {
  // A first component is a registry when it looks like a host: it has a dot or a port, or is localhost.
  return component.includes('.') || component.includes(':') || component === 'localhost' || /^\[.*\]/.test(component);
}

function validateRegistry(input: string, registry: string): void {
  const ipv6 = /^\[[0-9a-fA-F:.]+\](?::\d{1,5})?$/;
  if (ipv6.test(registry)) return;
  const [host, port, extra] = registry.split(':');
  if (extra !== undefined || !host) throw badReference(input, `registry "${registry}" is not a host[:port]`);
  if (port !== undefined && !/^\d{1,5}$/.test(port)) throw badReference(input, `registry port "${port}" is not a number`);
  for (const label of host.split('.')) {
    if (!DOMAIN_COMPONENT.test(label)) throw badReference(input, `registry "${registry}" is not a valid host name`);
  }
}

export function parseReference(input: string, options: { defaultRegistry?: string; defaultTag?: string | null } = {}): ImageReference {
  const text = input.trim();
  if (!text) throw badReference(input, 'it is empty');
  if (/\s/.test(text)) throw badReference(input, 'it contains white space');

  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) {
      throw badReference(input, `"${d}" is not a digest`, 'A digest is sha256: followed by 64 lowercase hex characters.');
    }
    digest = d;
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw badReference(input, `tag "${tag}" may only hold letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-")`);
    }
  }

  if (!rest) throw badReference(input, 'the name is missing');
  const parts = rest.split('/');
  let registry = options.defaultRegistry ?? DEFAULT_REGISTRY;
  if (parts.length > 1 && isRegistryHost(parts[0]!)) {
    registry = parts.shift()!;
    validateRegistry(input, registry);
  }
  if (parts.length === 0) throw badReference(input, 'the repository name is missing');
  for (const part of parts) {
    if (part !== part.toLowerCase() && PATH_COMPONENT.test(part.toLowerCase())) {
      throw badReference(input, `repository names must be lowercase ("${part}")`, `Try "${text.replace(part, part.toLowerCase())}".`);
    }
    if (!PATH_COMPONENT.test(part)) {
      throw badReference(
        input,
        part ? `"${part}" is not a valid name component` : 'it has an empty name component',
        'Name components are lowercase letters and digits, separated by ".", "_", "__" or "-".',
      );
    }
  }
  const repository = parts.join('/');
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    throw badReference(input, `the name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (!tag && !digest) {
    const defaultTag = options.defaultTag === undefined ? DEFAULT_TAG : options.defaultTag;
    if (defaultTag) tag = defaultTag;
  }
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** `registry/repository` */
export function referenceName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The canonical text: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${referenceName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The shorter text users type: the default registry left out. */
export function familiarReference(ref: ImageReference): string {
  const full = formatReference(ref);
  return ref.registry === DEFAULT_REGISTRY ? full.slice(DEFAULT_REGISTRY.length + 1) : full;
}

export function withTag(ref: ImageReference, tag: string): ImageReference {
  return parseReference(`${referenceName(ref)}:${tag}`);
}
