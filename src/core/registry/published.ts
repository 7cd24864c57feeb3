import { mapLimited } from '../concurrency';
import type { Digest } from '../digest';
import { UserError } from '../errors';
import { Annotation, MediaType, type ImageManifest } from '../mediaTypes';
import { DEFAULT_REGISTRY } from '../reference';
import { headerValue, httpRequest, TransportError } from './http';
import { RegistryClient, registryEndpoint } from './registryClient';
import { errorForResponse, errorForTransport, RegistryError } from './registryErrors';

/** One tag of a repository in a registry, with what `list --published` and the Registries tree show. */
export interface PublishedImage {
  registry: string;
  repository: string;
  tag: string;
  manifestDigest?: Digest;
  /** The wasm layer (oci variant) or the last layer (compat variant). */
  layerDigest?: Digest;
  size?: number;
  abi?: string;
  updated?: string;
  variant?: 'oci' | 'compat';
}

/** How a registry is searched: the OCI catalog filtered here, or WebAssembly Hub's Harbor search API as wasme did. */
export type SearchApi = 'catalog' | 'harbor';

export function defaultSearchApi(registry: string): SearchApi {
  return registry === DEFAULT_REGISTRY ? 'harbor' : 'catalog';
}

/** Details of one tag from its manifest: sizes, digests, ABI and creation time. */
export async function describeTag(client: RegistryClient, repository: string, tag: string): Promise<PublishedImage> {
  const m = await client.getManifest(repository, tag);
  const base: PublishedImage = { registry: client.registry, repository, tag, manifestDigest: m.digest };
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  } catch {
    return base;
  }
  if (!manifest.config || !Array.isArray(manifest.layers)) return base;
  const oci = manifest.config.mediaType === MediaType.wasmConfig;
  const layer = oci ? manifest.layers.find((l) => l.mediaType === MediaType.wasmLayer) : manifest.layers.at(-1);
  const abi = manifest.annotations?.[Annotation.abiVersion];
  const created = manifest.annotations?.[Annotation.created];
  return {
    ...base,
    variant: oci ? 'oci' : 'compat',
    ...(layer ? { layerDigest: layer.digest as Digest, size: layer.size } : {}),
    ...(abi ? { abi } : {}),
    ...(created ? { updated: created } : {}),
  };
}


/** Repositories matching a query (a case-insensitive substring); all of them without one. */
export async function searchRepositories(client: RegistryClient, query: string | undefined, api: SearchApi = defaultSearchApi(client.registry)): Promise<string[]> {
  if (api === 'harbor') return harborSearch(client, query);
  const all = await client.catalog();
  const q = query?.toLowerCase();
  return q ? all.filter((r) => r.toLowerCase().includes(q)) : all;
}

/** Every tag of the matching repositories, with details read from their manifests. */
export async function listPublished(client: RegistryClient, options: { search?: string; api?: SearchApi; details?: boolean } = {}): Promise<PublishedImage[]> {
  const api = options.api ?? defaultSearchApi(client.registry);
  if (api === 'harbor') return harborImages(client, options.search);
  const repositories = await searchRepositories(client, options.search, 'catalog');
  const perRepository = await mapLimited(repositories, 8, async (repository) => {
    const tags = await client.listTags(repository);
    if (options.details === false) return tags.map((tag) => ({ registry: client.registry, repository, tag }));
    return mapLimited(tags, 8, (tag) => describeTag(client, repository, tag));
  });
  return perRepository.flat().sort((a, b) => a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
}

// --- WebAssembly Hub: Harbor's v1 API, as wasme's `list --search` used it ---

interface HarborSearchResult {
  repository?: { repository_name?: string; project_name?: string; tags_count?: number }[];
}
interface HarborTag {
  name?: string;
  digest?: string;
  size?: number;
  push_time?: string;
  created?: string;
  annotations?: Record<string, string>;
}

async function harborGet<T>(client: RegistryClient, path: string, action: string): Promise<T> {
  const url = new URL(path, registryEndpoint(client.registry, client.scheme === 'http'));
  const op = { registry: client.registry, action };
  let response;
  try {
    response = await httpRequest({ method: 'GET', url, headers: { accept: 'application/json' }, maxResponseBytes: 16 * 1024 * 1024 });
  } catch (err) {
    if (err instanceof TransportError) throw errorForTransport(op, err, client.scheme);
    throw err;
  }
  if (response.status !== 200) {
    const error = errorForResponse(op, response);
    if (response.status === 404) {
      throw new RegistryError(error.message, `${client.registry} has no WebAssembly Hub search API; search it through its catalog: add --api catalog.`, 'E_NO_SEARCH_API', op, 404);
    }
    throw error;
  }
  const type = headerValue(response.headers, 'content-type') ?? '';
  try {
    return JSON.parse(response.body.toString('utf8')) as T;
  } catch {
    throw new RegistryError(`${action} at ${client.registry}: the answer is not JSON (${type || 'no content type'}).`, 'Is this WebAssembly Hub? For other registries use --api catalog.', 'E_NO_SEARCH_API', op);
  }
}

async function harborSearch(client: RegistryClient, query: string | undefined): Promise<string[]> {
  const result = await harborGet<HarborSearchResult>(client, `/api/search?q=${encodeURIComponent(query ?? '')}`, 'searching repositories');
  return (result.repository ?? []).map((r) => r.repository_name).filter((n): n is string => !!n);
}

async function harborImages(client: RegistryClient, query: string | undefined): Promise<PublishedImage[]> {
  const repositories = await harborSearch(client, query);
  const perRepository = await mapLimited(repositories, 8, async (repository) => {
    const tags = await harborGet<HarborTag[]>(client, `/api/repositories/${repository.split('/').map(encodeURIComponent).join('/')}/tags?detail=true`, `listing tags of ${repository}`);
    return (Array.isArray(tags) ? tags : []).map(
      (t): PublishedImage => ({
        registry: client.registry,
        repository,
        tag: t.name ?? '',
        ...(t.digest ? { manifestDigest: t.digest as Digest } : {}),
        ...(typeof t.size === 'number' ? { size: t.size } : {}),
        ...(t.annotations?.[Annotation.abiVersion] ? { abi: t.annotations[Annotation.abiVersion] } : {}),
        ...(t.push_time ?? t.created ? { updated: (t.push_time ?? t.created)! } : {}),
      }),
    );
  });
  return perRepository.flat().sort((a, b) => a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
}

export function assertSearchApi(value: string): SearchApi {
  if (value === 'catalog' || value === 'harbor') return value;
  throw new UserError(`--api must be catalog or harbor, not "${value}".`, undefined, 'E_USAGE');
}
