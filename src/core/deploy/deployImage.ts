import { summarizeImage } from '../imageSummary';
import { badImage, readImageContentFrom } from '../image/wasmImage';
import { parseManifest } from '../store/localStore';
import { familiarReference, formatReference, parseReference } from '../reference';
import { pullImage, type ClientFactory } from '../registry/transfer';
import type { LocalStore } from '../store/localStore';
import { UserError } from '../errors';
import type { CredentialSource } from '../registry/credentials';
import { RegistryClient } from '../registry/registryClient';
import { RegistryError } from '../registry/registryErrors';

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

/**
 * The login Istio needs to pull an image: only when the registry refuses an anonymous look at the
 * manifest (a private image) and a login for it is known (ours, or Docker's).
 */
export async function pullCredentialFor(
  refText: string,
  options: { credentials: CredentialSource; plainHttp?: boolean; insecure?: boolean },
): Promise<{ registry: string; username: string; secret: string } | undefined> {
  const ref = parseReference(refText);
  const credential = await options.credentials.get(ref.registry);
  if (!credential || credential.identityToken) return undefined;
  const anonymous = new RegistryClient(ref.registry, { ...(options.plainHttp ? { plainHttp: true } : {}), ...(options.insecure ? { insecure: true } : {}), attempts: 1 });
  try {
    await anonymous.headManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
    return undefined; // public: Istio pulls it without a secret
  } catch (err) {
    if (err instanceof RegistryError && (err.code === 'E_LOGIN_REQUIRED' || err.code === 'E_DENIED' || err.status === 401 || err.status === 403)) {
      return { registry: ref.registry, username: credential.username, secret: credential.secret };
    }
    return undefined;
  }
}

/**
 * The same facts read from the registry, without a local store (the operator's way): the manifest by
 * tag or digest, then the blobs that hold the module and its runtime config.
 */
export async function resolveRemoteImage(refText: string, client: RegistryClient): Promise<ImageForDeploy> {
  const ref = parseReference(refText);
  const fetched = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  const manifest = parseManifest(fetched.bytes, familiarReference(ref));
  const sizes = new Map<string, number>([[manifest.config.digest, manifest.config.size], ...manifest.layers.map((l) => [l.digest, l.size] as [string, number])]);
  const content = await readImageContentFrom(
    manifest,
    (digest) => client.fetchBlob(ref.repository, digest, sizes.get(digest) ?? 0),
    (why) => badImage(familiarReference(ref), why, 'Push a wasm filter image to that reference (wasm-filter push).'),
  );
  return {
    image: formatReference({ registry: ref.registry, repository: ref.repository, ...(ref.tag ? { tag: ref.tag } : {}) }),
    manifestDigest: fetched.digest,
    wasmDigest: content.wasmDigest,
    abiVersions: content.abiVersions,
    rootIds: content.rootIds,
  };
}
