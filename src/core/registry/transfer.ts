import { isDigest, type Digest } from '../digest';
import { UserError } from '../errors';
import { badImage, readImageContentFrom } from '../image/wasmImage';
import { MediaType, type Descriptor, type ImageManifest } from '../mediaTypes';
import { familiarReference, parseReference, type ImageReference } from '../reference';
import { parseManifest, type LocalStore, type StoredImage } from '../store/localStore';
import { MAX_MANIFEST_BYTES, RegistryClient, type BlobProgress } from './registryClient';
import { RegistryError } from './registryErrors';

/** Gives a configured client for a registry (credentials, plain HTTP, TLS, cancellation come from the caller). */
export type ClientFactory = (registry: string) => RegistryClient;

/** Progress of a whole image: bytes of all its blobs together. */
export interface TransferProgress {
  bytesDone: number;
  bytesTotal: number;
  /** The blob that moved last, and what happened to it. */
  digest?: Digest;
  state?: 'exists' | 'mounted' | 'uploaded' | 'downloaded' | 'cached';
}

export interface TransferResult {
  reference: ImageReference;
  manifestDigest: Digest;
  /** Blob bytes that actually crossed the network. */
  bytesTransferred: number;
  blobs: { digest: Digest; size: number; state: NonNullable<TransferProgress['state']> }[];
}

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Adds up per-blob progress into image progress. */
function progressOf(descriptors: Descriptor[], onProgress?: (p: TransferProgress) => void) {
  const total = descriptors.reduce((n, d) => n + d.size, 0);
  const done = new Map<string, number>();
  return (p: BlobProgress, state?: TransferProgress['state']) => {
    done.set(p.digest, p.bytesDone);
    let sum = 0;
    for (const v of done.values()) sum += v;
    onProgress?.({ bytesDone: Math.min(sum, total), bytesTotal: total, digest: p.digest, ...(state ? { state } : {}) });
  };
}

/**
 * Pushes a stored image to its registry (or to `target`). Blobs the registry has are skipped, blobs another
 * repository of the same registry holds are mounted, the rest uploaded; the manifest goes last, byte for byte,
 * so the image keeps its digest.
 */
export async function pushImage(
  store: LocalStore,
  source: string,
  options: { clients: ClientFactory; target?: string; onProgress?: (p: TransferProgress) => void },
): Promise<TransferResult> {
  let image: StoredImage;
  try {
    image = await store.resolve(source);
  } catch (err) {
    if (err instanceof UserError && err.code === 'E_IMAGE_NOT_FOUND') {
      throw new UserError(
        `${source} is not in the local store, so there is nothing to push.`,
        `Build it with \`wasm-filter build -t ${source}\`, or tag an image you have: \`wasm-filter tag SRC ${source}\` (see \`wasm-filter list\`).`,
        'E_IMAGE_NOT_FOUND',
      );
    }
    throw err;
  }
  const target = options.target ? parseReference(options.target) : image.reference;
  if (!target.tag && !target.digest) throw new UserError(`Push needs a tag: ${options.target}.`, undefined, 'E_BAD_REFERENCE');
  const client = options.clients(target.registry);
  const manifestBytes = await store.readBlob(image.descriptor.digest, MAX_MANIFEST_BYTES);
  const manifest = image.manifest;
  const descriptors = [manifest.config, ...manifest.layers];
  // Other repositories of the same registry that the store knows hold this image: mount sources.
  const mountFrom = [
    ...new Set(
      (await store.list())
        .filter((i) => i.reference.registry === target.registry && i.reference.repository !== target.repository && i.descriptor.digest === image.descriptor.digest)
        .map((i) => i.reference.repository),
    ),
  ];
  const report = progressOf(descriptors, options.onProgress);
  const before = client.uploadedBytes;
  const blobs: TransferResult['blobs'] = [];
  for (const d of uniqueDescriptors(descriptors)) {
    const data = await store.readBlob(d.digest as Digest);
    const state = await client.pushBlob(target.repository, data, { mountFrom, onProgress: (p) => report(p) });
    report({ digest: d.digest as Digest, bytesDone: d.size, bytesTotal: d.size }, state);
    blobs.push({ digest: d.digest as Digest, size: d.size, state });
  }
  const mediaType = manifest.mediaType ?? MediaType.ociManifest;
  const manifestDigest = await client.putManifest(target.repository, target.tag ?? image.descriptor.digest, manifestBytes, mediaType);
  return { reference: { ...target, digest: manifestDigest }, manifestDigest, bytesTransferred: client.uploadedBytes - before, blobs };
}

function uniqueDescriptors(descriptors: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return descriptors.filter((d) => (seen.has(d.digest) ? false : (seen.add(d.digest), true)));
}

/** A manifest from a registry, refused early if it is an index or not an image manifest at all. */
async function fetchImageManifest(client: RegistryClient, ref: ImageReference): Promise<{ bytes: Buffer; digest: Digest; manifest: ImageManifest }> {
  const fetched = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  if (ref.digest && fetched.digest !== ref.digest) {
    throw new RegistryError(`The manifest of ${familiarReference(ref)} has digest ${fetched.digest}.`, 'The registry sent another manifest than the one asked for.', 'E_DIGEST_MISMATCH', { registry: ref.registry, repository: ref.repository, action: 'pulling' });
  }
  const parsed = JSON.parse(fetched.bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
  if (Array.isArray(parsed.manifests)) {
    throw new UserError(
      `${familiarReference(ref)} is an image index (a multi-platform image), not a wasm filter image.`,
      'Wasm filter images have a single manifest. Check the reference.',
      'E_BAD_IMAGE',
    );
  }
  const manifest = parseManifest(fetched.bytes, `the manifest of ${familiarReference(ref)}`);
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new UserError(`The config of ${familiarReference(ref)} declares ${manifest.config.size} bytes; at most ${MAX_CONFIG_BYTES} are accepted.`, undefined, 'E_TOO_LARGE');
  }
  return { bytes: fetched.bytes, digest: fetched.digest, manifest };
}

/**
 * Pulls an image into the store. Every blob is checked against its digest and size, and the image checked
 * to be a wasm filter image, before anything is written; the store then takes it in one locked step.
 */
export async function pullImage(
  store: LocalStore,
  refText: string,
  options: { clients: ClientFactory; onProgress?: (p: TransferProgress) => void },
): Promise<{ image: StoredImage } & TransferResult> {
  const ref = parseReference(refText);
  const client = options.clients(ref.registry);
  const { bytes, digest, manifest } = await fetchImageManifest(client, ref);
  const descriptors = uniqueDescriptors([manifest.config, ...manifest.layers]);
  const report = progressOf(descriptors, options.onProgress);
  const fetched = new Map<string, Buffer>();
  const blobs: TransferResult['blobs'] = [];
  let bytesTransferred = 0;
  for (const d of descriptors) {
    if (!isDigest(d.digest)) throw new UserError(`The manifest of ${familiarReference(ref)} names an invalid digest "${d.digest}".`, undefined, 'E_BAD_MANIFEST');
    if (await store.hasBlob(d.digest)) {
      report({ digest: d.digest, bytesDone: d.size, bytesTotal: d.size }, 'cached');
      blobs.push({ digest: d.digest, size: d.size, state: 'cached' });
      continue;
    }
    const data = await client.fetchBlob(ref.repository, d.digest, d.size, (p) => report(p));
    fetched.set(d.digest, data);
    bytesTransferred += data.length;
    report({ digest: d.digest, bytesDone: d.size, bytesTotal: d.size }, 'downloaded');
    blobs.push({ digest: d.digest, size: d.size, state: 'downloaded' });
  }
  const name = familiarReference(ref);
  await readImageContentFrom(
    manifest,
    async (d, max) => fetched.get(d) ?? store.readBlob(d, max),
    (why) => badImage(name, why, 'Pull an image built for proxy-wasm (wasme "oci" or Istio "compat" format); nothing was written to the store.'),
  );
  const image = await store.commit(ref, [...fetched.values()], bytes);
  return { image, reference: { ...ref, digest }, manifestDigest: digest, bytesTransferred, blobs };
}

/**
 * Copies an image from one registry repository to another without the local store: blobs the target has are
 * skipped, blobs in the same registry are mounted, others stream through memory, verified on the way.
 */
export async function copyImage(
  sourceText: string,
  targetText: string,
  options: { clients: ClientFactory; onProgress?: (p: TransferProgress) => void },
): Promise<TransferResult> {
  const source = parseReference(sourceText);
  const target = parseReference(targetText);
  if (target.digest && !target.tag) throw new UserError(`Copy needs a tag for the target: ${targetText}.`, 'Give REGISTRY/NAME:TAG as the target.', 'E_BAD_REFERENCE');
  const from = options.clients(source.registry);
  const to = source.registry === target.registry ? from : options.clients(target.registry);
  const { bytes, digest, manifest } = await fetchImageManifest(from, source);
  const descriptors = uniqueDescriptors([manifest.config, ...manifest.layers]);
  const report = progressOf(descriptors, options.onProgress);
  const before = to.uploadedBytes;
  const blobs: TransferResult['blobs'] = [];
  for (const d of descriptors) {
    const blobDigest = d.digest as Digest;
    if (await to.blobExists(target.repository, blobDigest)) {
      report({ digest: blobDigest, bytesDone: d.size, bytesTotal: d.size }, 'exists');
      blobs.push({ digest: blobDigest, size: d.size, state: 'exists' });
      continue;
    }
    const data = await from.fetchBlob(source.repository, blobDigest, d.size);
    const state = await to.pushBlob(target.repository, data, { mountFrom: source.registry === target.registry ? [source.repository] : [], onProgress: (p) => report(p) });
    report({ digest: blobDigest, bytesDone: d.size, bytesTotal: d.size }, state);
    blobs.push({ digest: blobDigest, size: d.size, state });
  }
  await to.putManifest(target.repository, target.tag ?? digest, bytes, manifest.mediaType ?? MediaType.ociManifest);
  return { reference: { ...target, digest }, manifestDigest: digest, bytesTransferred: to.uploadedBytes - before, blobs };
}

