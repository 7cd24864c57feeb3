import { gunzipSync, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { sha256Digest, type Digest } from '../digest';
import { UserError } from '../errors';
import {
  Annotation,
  COMPAT_WASM_FILE,
  MediaType,
  OCI_WASM_FILE,
  RUNTIME_CONFIG_FILE,
  type Descriptor,
  type ImageManifest,
} from '../mediaTypes';
import type { LocalStore, StoredImage } from '../store/localStore';
import { abiFromRuntimeName, runtimeAbiNames, type AbiVersion } from '../wasm/abi';

export type ImageVariant = 'oci' | 'compat';
export const IMAGE_VARIANTS: ImageVariant[] = ['oci', 'compat'];

/** wasme's runtime-config.json, packaged as the image config (camelCase, as wasme wrote it). */
export interface RuntimeConfig {
  type: string;
  abiVersions: string[];
  config: { rootIds: string[] };
}

export function makeRuntimeConfig(abi: AbiVersion, rootIds: string[], type = 'envoy_proxy'): RuntimeConfig {
  return { type, abiVersions: runtimeAbiNames(abi), config: { rootIds } };
}

/** Key order is fixed so that the same inputs always give the same bytes and digests. */
function serializeRuntimeConfig(config: RuntimeConfig): Buffer {
  return Buffer.from(JSON.stringify({ type: config.type, abiVersions: config.abiVersions, config: { rootIds: config.config.rootIds } }));
}

export interface PackedImage {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: Digest;
  /** Every blob the manifest references (config and layers). */
  blobs: Buffer[];
  /** The digest of the wasm module itself (wasme's cache key and list SHA). */
  wasmDigest: Digest;
}

function descriptor(mediaType: string, data: Uint8Array, annotations?: Record<string, string>): Descriptor {
  return { mediaType, digest: sha256Digest(data), size: data.length, ...(annotations ? { annotations } : {}) };
}

function createdAnnotation(): Record<string, string> {
  // Images are reproducible: no wall-clock time unless the build asks for one the standard way.
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return epoch && /^\d+$/.test(epoch) ? { [Annotation.created]: new Date(Number(epoch) * 1000).toISOString() } : {};
}

/**
 * Packages a module as an image. "oci" is wasme's format: the runtime config as config and first
 * layer, the module as second layer. "compat" is the Docker-compatible form Istio also pulls: an
 * ordinary image config and one tar+gzip layer holding plugin.wasm (and runtime-config.json).
 */
export async function packImage(options: { wasm: Uint8Array; runtimeConfig: RuntimeConfig; variant: ImageVariant }): Promise<PackedImage> {
  const wasm = Buffer.from(options.wasm);
  const runtimeConfigBytes = serializeRuntimeConfig(options.runtimeConfig);
  const baseAnnotations = {
    [Annotation.abiVersion]: options.runtimeConfig.abiVersions.join(','),
    [Annotation.runtimeType]: options.runtimeConfig.type,
    ...createdAnnotation(),
  };
  let manifest: ImageManifest;
  let blobs: Buffer[];
  if (options.variant === 'oci') {
    manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: descriptor(MediaType.wasmConfig, runtimeConfigBytes),
      layers: [
        descriptor(MediaType.wasmConfig, runtimeConfigBytes, { [Annotation.title]: RUNTIME_CONFIG_FILE }),
        descriptor(MediaType.wasmLayer, wasm, { [Annotation.title]: OCI_WASM_FILE }),
      ],
      annotations: baseAnnotations,
    };
    blobs = [runtimeConfigBytes, wasm];
  } else {
    const layerTar = await makeTar([
      { name: COMPAT_WASM_FILE, data: wasm },
      { name: RUNTIME_CONFIG_FILE, data: runtimeConfigBytes },
    ]);
    const layer = gzipSync(layerTar, { level: 9 });
    const imageConfig = Buffer.from(
      JSON.stringify({
        architecture: 'wasm',
        os: 'wasip1',
        config: { Labels: { [Annotation.abiVersion]: baseAnnotations[Annotation.abiVersion] } },
        rootfs: { type: 'layers', diff_ids: [sha256Digest(layerTar)] },
      }),
    );
    manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: descriptor(MediaType.ociConfig, imageConfig),
      layers: [descriptor(MediaType.ociLayerTarGzip, layer, { [Annotation.title]: `${COMPAT_WASM_FILE}.tar.gz` })],
      annotations: { ...baseAnnotations, [Annotation.variant]: 'compat' },
    };
    blobs = [imageConfig, layer];
  }
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { manifest, manifestBytes, manifestDigest: sha256Digest(manifestBytes), blobs, wasmDigest: sha256Digest(wasm) };
}

async function makeTar(files: { name: string; data: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const file of files) {
    // Fixed metadata keeps the layer (and so the manifest digest) reproducible.
    pack.entry({ name: file.name, size: file.data.length, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, type: 'file' }, file.data);
  }
  pack.finalize();
  return done;
}

async function readTar(data: Buffer): Promise<Map<string, Buffer>> {
  const extract = tar.extract();
  const files = new Map<string, Buffer>();
  const done = (async () => {
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const chunk of entry) parts.push(chunk as Buffer);
      if (entry.header.type === 'file') files.set(entry.header.name.replace(/^\.?\//, ''), Buffer.concat(parts));
    }
  })();
  extract.end(data);
  await done;
  return files;
}

export function imageVariant(manifest: ImageManifest): ImageVariant {
  return manifest.config.mediaType === MediaType.wasmConfig ? 'oci' : 'compat';
}

export interface ImageContent {
  variant: ImageVariant;
  wasm: Buffer;
  wasmDigest: Digest;
  runtimeConfig?: RuntimeConfig;
  abiVersions: string[];
  abi?: AbiVersion;
  rootIds: string[];
}

/** Reads the module and runtime config out of a stored image, whichever variant it is. */
export function readImageContent(store: LocalStore, image: StoredImage): Promise<ImageContent> {
  return readImageContentFrom(image.manifest, (digest, maxBytes) => store.readBlob(digest, maxBytes), (why) => badImage(image.refName, why, 'Remove it with `wasm-filter rm` and build or pull it again.'));
}

/**
 * The same, from any source of blobs (the store, or blobs just downloaded and not yet stored).
 * `bad` makes the error for content that is not a wasm filter image.
 */
export async function readImageContentFrom(
  manifest: ImageManifest,
  readBlob: (digest: Digest, maxBytes?: number) => Promise<Buffer>,
  bad: (why: string) => UserError,
): Promise<ImageContent> {
  const variant = imageVariant(manifest);
  let wasm: Buffer | undefined;
  let runtimeConfig: RuntimeConfig | undefined;
  if (variant === 'oci') {
    const wasmLayer = manifest.layers.find((l) => l.mediaType === MediaType.wasmLayer);
    if (!wasmLayer) throw bad(`it has no ${MediaType.wasmLayer} layer`);
    wasm = await readBlob(wasmLayer.digest as Digest);
    runtimeConfig = parseRuntimeConfig(await readBlob(manifest.config.digest as Digest, 1024 * 1024));
  } else {
    const layer = manifest.layers.at(-1);
    if (!layer) throw bad('it has no layers');
    let files: Map<string, Buffer>;
    try {
      files = await readTar(gunzipSync(await readBlob(layer.digest as Digest)));
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw bad(`its last layer is not a tar+gzip archive (${(err as Error).message})`);
    }
    wasm = files.get(COMPAT_WASM_FILE) ?? [...files.entries()].find(([name]) => name.endsWith('.wasm'))?.[1];
    if (!wasm) throw bad(`its last layer holds no ${COMPAT_WASM_FILE}`);
    const rc = files.get(RUNTIME_CONFIG_FILE);
    runtimeConfig = rc ? parseRuntimeConfig(rc) : undefined;
  }
  const abiVersions = runtimeConfig?.abiVersions ?? manifest.annotations?.[Annotation.abiVersion]?.split(',') ?? [];
  const abi = abiVersions.map(abiFromRuntimeName).find((a) => a !== undefined);
  return {
    variant,
    wasm,
    wasmDigest: sha256Digest(wasm),
    ...(runtimeConfig ? { runtimeConfig } : {}),
    abiVersions,
    ...(abi ? { abi } : {}),
    rootIds: runtimeConfig?.config?.rootIds ?? [],
  };
}

function parseRuntimeConfig(bytes: Buffer): RuntimeConfig | undefined {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as RuntimeConfig;
    return value && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

export function badImage(name: string, why: string, hint: string): UserError {
  return new UserError(`${name} is not a wasm filter image: ${why}.`, hint, 'E_BAD_IMAGE');
}
