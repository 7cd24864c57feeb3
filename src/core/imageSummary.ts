import { shortDigest, type Digest } from './digest';
import { formatSize, formatUpdated } from './format';
import { readImageContent, type ImageVariant } from './image/wasmImage';
import { familiarReference, referenceName } from './reference';
import type { LocalStore, StoredImage } from './store/localStore';

/** What `list`, `inspect` and the Local Images tree show of a stored image. */
export interface ImageSummary {
  reference: string;
  name: string;
  tag: string;
  familiar: string;
  manifestDigest: Digest;
  wasmDigest: Digest;
  wasmSize: number;
  variant: ImageVariant;
  abiVersions: string[];
  abi?: string;
  rootIds: string[];
  updated?: string;
}

export async function summarizeImage(store: LocalStore, image: StoredImage): Promise<ImageSummary> {
  const content = await readImageContent(store, image);
  return {
    reference: image.refName,
    name: referenceName(image.reference),
    tag: image.reference.tag ?? '',
    familiar: familiarReference(image.reference),
    manifestDigest: image.descriptor.digest,
    wasmDigest: content.wasmDigest,
    wasmSize: content.wasm.length,
    variant: content.variant,
    abiVersions: content.abiVersions,
    ...(content.abi ? { abi: content.abi } : {}),
    rootIds: content.rootIds,
    ...(image.updated ? { updated: image.updated.toISOString() } : {}),
  };
}

export async function summarizeStore(store: LocalStore): Promise<ImageSummary[]> {
  const images = await store.list();
  return Promise.all(images.map((i) => summarizeImage(store, i)));
}

/** wasme's `list` row: NAME TAG SIZE SHA UPDATED (SHA = the wasm layer digest, 8 hex unless wide). */
export function listRow(s: ImageSummary, wide = false): string[] {
  return [
    s.name,
    s.tag,
    wide ? `${s.wasmSize} B` : formatSize(s.wasmSize),
    wide ? s.wasmDigest : shortDigest(s.wasmDigest),
    formatUpdated(s.updated ? new Date(s.updated) : undefined),
  ];
}
