import { summarizeImage } from '../imageSummary';
import { familiarReference, formatReference, parseReference } from '../reference';
import { pullImage, type ClientFactory } from '../registry/transfer';
import type { LocalStore } from '../store/localStore';
import { UserError } from '../errors';

/** What a deploy needs to know of an image: its name, both digests, ABI versions and root ids. */
export interface ImageForDeploy {
  image: string;
  manifestDigest: string;
  wasmDigest: string;
  abiVersions: string[];
  rootIds: string[];
}

/**
 * Reads an image's facts from the local store, pulling it first when only the registry has it (the
 * cluster pulls from the registry, so the image must be there; the store copy gives the digests).
 */
export async function imageForDeploy(store: LocalStore, refText: string, clients?: ClientFactory): Promise<ImageForDeploy> {
  const ref = parseReference(refText);
  let stored = await store.resolve(refText).catch(() => undefined);
  if (!stored) {
    if (!clients) throw new UserError(`${familiarReference(ref)} is not in the local store.`, 'Build or pull it first.', 'E_IMAGE_NOT_FOUND');
    stored = (await pullImage(store, refText, { clients })).image;
  }
  const summary = await summarizeImage(store, stored);
  return {
    image: formatReference({ registry: ref.registry, repository: ref.repository, ...(ref.tag ? { tag: ref.tag } : {}) }),
    manifestDigest: summary.manifestDigest,
    wasmDigest: summary.wasmDigest,
    abiVersions: summary.abiVersions,
    rootIds: summary.rootIds,
  };
}
