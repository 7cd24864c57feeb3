import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { digestHex, isDigest, sha256Digest, type Digest } from '../digest';
import { UserError } from '../errors';
import { resolveHome } from '../home';
import { pathExists, writeFileAtomic } from '../fsAtomic';
import { Annotation, MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../mediaTypes';
import { familiarReference, formatReference, parseReference, type ImageReference } from '../reference';

export interface StoredImage {
  reference: ImageReference;
  /** The reference as stored in `org.opencontainers.image.ref.name` (registry/repository:tag). */
  refName: string;
  descriptor: Descriptor & { digest: Digest };
  manifest: ImageManifest;
  updated?: Date;
}

export interface StoreLocationOptions {
  store?: string;
  env?: NodeJS.ProcessEnv;
}

/** `--store`, else `$WASM_FILTER_HOME/store`, else `~/.wasm-filter/store`. */
export function resolveStoreRoot(options: StoreLocationOptions = {}): string {
  if (options.store) return path.resolve(options.store);
  const env = options.env ?? process.env;
  return path.join(resolveHome(env), 'store');
}

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const BACKUP_FILE = 'index.json.bak';
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * The local image store, laid out as an OCI Image Layout so that skopeo, oras and crane can read it.
 * Blobs are content-addressed and written atomically. Every change to index.json happens under a
 * cross-process lock, and blobs are only written or collected under that same lock, so two builds,
 * tags or removals at once neither lose an entry nor delete a blob another one is about to reference.
 */
export class LocalStore {
  private constructor(readonly root: string) {}

  static async open(root: string): Promise<LocalStore> {
    const store = new LocalStore(root);
    await store.ensureLayout();
    return store;
  }

  private get indexPath(): string {
    return path.join(this.root, INDEX_FILE);
  }

  blobPath(digest: Digest): string {
    return path.join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  private async ensureLayout(): Promise<void> {
    const layoutPath = path.join(this.root, LAYOUT_FILE);
    if (!(await pathExists(layoutPath))) {
      // Several processes may open a new store at once: one creates it, under the lock, the others wait.
      await fs.mkdir(this.root, { recursive: true });
      await this.withLock(async () => {
        if (await pathExists(layoutPath)) return;
        const entries = (await fs.readdir(this.root)).filter((e) => !e.startsWith('.'));
        if (entries.length > 0) {
          throw new UserError(
            `${this.root} is not an image store (it has files but no ${LAYOUT_FILE}).`,
            'Point --store or WASM_FILTER_HOME at an empty folder or an existing store.',
            'E_NOT_A_STORE',
          );
        }
        await fs.mkdir(path.join(this.root, 'blobs', 'sha256'), { recursive: true });
        await this.writeIndex({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
        // Written last: its presence says the store is complete.
        await writeFileAtomic(layoutPath, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      });
      return;
    }
    let layout: { imageLayoutVersion?: string };
    try {
      layout = JSON.parse(await fs.readFile(layoutPath, 'utf8'));
    } catch (err) {
      throw this.corrupted(`${LAYOUT_FILE} is not valid JSON (${(err as Error).message})`);
    }
    if (layout.imageLayoutVersion !== '1.0.0') {
      throw this.corrupted(`${LAYOUT_FILE} declares layout version "${layout.imageLayoutVersion}", expected 1.0.0`);
    }
    await fs.mkdir(path.join(this.root, 'blobs', 'sha256'), { recursive: true });
  }

  private corrupted(why: string): UserError {
    return new UserError(
      `The image store at ${this.root} is corrupted: ${why}.`,
      `Nothing was changed. If ${BACKUP_FILE} exists there, it is the index before the last change: copy it over ${INDEX_FILE}; otherwise move the store away and rebuild or pull your images.`,
      'E_STORE_CORRUPTED',
    );
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await lockfile.lock(this.root, {
      lockfilePath: path.join(this.root, '.lock'),
      realpath: false,
      stale: 15_000,
      retries: { retries: 200, minTimeout: 10, maxTimeout: 250, factor: 1.3, randomize: true },
    });
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  async readIndex(): Promise<ImageIndex> {
    let text: string;
    try {
      text = await fs.readFile(this.indexPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
      throw err;
    }
    let index: ImageIndex;
    try {
      index = JSON.parse(text) as ImageIndex;
    } catch (err) {
      throw this.corrupted(`${INDEX_FILE} is not valid JSON (${(err as Error).message})`);
    }
    if (index?.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
      throw this.corrupted(`${INDEX_FILE} is not an OCI image index (schemaVersion 2 with a manifests list)`);
    }
    for (const d of index.manifests) {
      if (!d || typeof d.digest !== 'string' || !isDigest(d.digest) || typeof d.size !== 'number') {
        throw this.corrupted(`${INDEX_FILE} has an entry without a valid digest and size`);
      }
    }
    return index;
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    if (await pathExists(this.indexPath)) {
      await fs.copyFile(this.indexPath, path.join(this.root, BACKUP_FILE));
    }
    await writeFileAtomic(this.indexPath, JSON.stringify(index, null, 2) + '\n');
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return pathExists(this.blobPath(digest));
  }

  /** Reads a blob and checks that its content still has its digest. */
  async readBlob(digest: Digest, maxBytes?: number): Promise<Buffer> {
    const file = this.blobPath(digest);
    let data: Buffer;
    try {
      if (maxBytes !== undefined) {
        const stat = await fs.stat(file);
        if (stat.size > maxBytes) throw this.corrupted(`blob ${digest} is ${stat.size} bytes, more than the ${maxBytes} allowed for it`);
      }
      data = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw this.corrupted(`blob ${digest} is missing`);
      throw err;
    }
    if (sha256Digest(data) !== digest) throw this.corrupted(`blob ${digest} does not match its digest`);
    return data;
  }

  private async writeBlob(data: Uint8Array): Promise<Digest> {
    const digest = sha256Digest(data);
    const file = this.blobPath(digest);
    if (await pathExists(file)) {
      const existing = await fs.readFile(file);
      if (sha256Digest(existing) === digest) return digest;
    }
    await writeFileAtomic(file, data, { mode: 0o444 });
    return digest;
  }

  async readManifest(digest: Digest): Promise<ImageManifest> {
    const bytes = await this.readBlob(digest, MAX_MANIFEST_BYTES);
    return parseManifest(bytes, `manifest ${digest}`);
  }

  private async toStoredImage(descriptor: Descriptor): Promise<StoredImage | undefined> {
    const refName = descriptor.annotations?.[Annotation.refName];
    if (!refName) return undefined; // untagged entries (other tools) are kept but not listed
    let reference: ImageReference;
    try {
      reference = parseReference(refName, { defaultTag: null });
    } catch {
      return undefined;
    }
    const manifest = await this.readManifest(descriptor.digest as Digest);
    const updatedText = descriptor.annotations?.[Annotation.storeUpdated];
    return {
      reference,
      refName,
      descriptor: descriptor as StoredImage['descriptor'],
      manifest,
      ...(updatedText ? { updated: new Date(updatedText) } : {}),
    };
  }

  async list(): Promise<StoredImage[]> {
    const index = await this.readIndex();
    const images: StoredImage[] = [];
    for (const d of index.manifests) {
      const image = await this.toStoredImage(d);
      if (image) images.push(image);
    }
    return images.sort((a, b) => a.refName.localeCompare(b.refName));
  }

  /** Finds an image by `name:tag`, `name@digest`, or a unique manifest digest prefix. */
  async resolve(refText: string): Promise<StoredImage> {
    const images = await this.list();
    if (/^(sha256:)?[a-f0-9]{6,64}$/.test(refText)) {
      const hex = refText.replace(/^sha256:/, '');
      const matches = images.filter((i) => digestHex(i.descriptor.digest).startsWith(hex));
      if (matches.length >= 1 && new Set(matches.map((m) => m.descriptor.digest)).size === 1) return matches[0]!;
    }
    const ref = parseReference(refText);
    const found = images.find((i) =>
      ref.digest
        ? i.descriptor.digest === ref.digest && (!ref.tag || i.reference.tag === ref.tag) && i.reference.repository === ref.repository
        : i.refName === formatReference(ref),
    );
    if (!found) {
      throw new UserError(
        `No image ${familiarReference(ref)} in the local store (${this.root}).`,
        'Run `wasm-filter list` to see the images there, or build one with `wasm-filter build -t NAME:TAG`.',
        'E_IMAGE_NOT_FOUND',
      );
    }
    return found;
  }

  /**
   * Writes an image's blobs and manifest and points `ref` at it, all under the store lock.
   * An existing entry with the same reference is replaced (as `docker tag` moves a tag).
   */
  async commit(ref: ImageReference, blobs: Uint8Array[], manifestBytes: Uint8Array): Promise<StoredImage> {
    const manifest = parseManifest(manifestBytes, 'the new manifest');
    // A digest-only reference (a pull by digest) is kept as name@digest; anything else gets a tag.
    const refName = formatReference(
      !ref.tag && ref.digest ? { registry: ref.registry, repository: ref.repository, digest: ref.digest } : { registry: ref.registry, repository: ref.repository, tag: ref.tag ?? 'latest' },
    );
    return this.withLock(async () => {
      const index = await this.readIndex();
      for (const blob of blobs) await this.writeBlob(blob);
      for (const d of [manifest.config, ...manifest.layers]) {
        if (!(await this.hasBlob(d.digest as Digest))) throw new Error(`internal: blob ${d.digest} of the manifest was not written`);
      }
      const digest = await this.writeBlob(manifestBytes);
      const descriptor = {
        mediaType: manifest.mediaType ?? MediaType.ociManifest,
        digest,
        size: manifestBytes.length,
        annotations: { [Annotation.refName]: refName, [Annotation.storeUpdated]: new Date().toISOString() },
      };
      index.manifests = index.manifests.filter((d) => d.annotations?.[Annotation.refName] !== refName);
      index.manifests.push(descriptor);
      await this.writeIndex(index);
      return (await this.toStoredImage(descriptor))!;
    });
  }

  /** Points another reference at an image already in the store. */
  async tag(sourceText: string, targetText: string): Promise<StoredImage> {
    const source = await this.resolve(sourceText);
    const target = parseReference(targetText);
    if (target.digest) {
      throw new UserError(`A tag target cannot carry a digest ("${targetText}").`, 'Give NAME:TAG as the target.', 'E_BAD_REFERENCE');
    }
    const refName = formatReference(target);
    return this.withLock(async () => {
      const index = await this.readIndex();
      if (!(await this.hasBlob(source.descriptor.digest))) throw this.corrupted(`manifest ${source.descriptor.digest} is missing`);
      const descriptor = {
        mediaType: source.descriptor.mediaType,
        digest: source.descriptor.digest,
        size: source.descriptor.size,
        annotations: { [Annotation.refName]: refName, [Annotation.storeUpdated]: new Date().toISOString() },
      };
      index.manifests = index.manifests.filter((d) => d.annotations?.[Annotation.refName] !== refName);
      index.manifests.push(descriptor);
      await this.writeIndex(index);
      return (await this.toStoredImage(descriptor))!;
    });
  }

  /** Removes references; blobs no remaining entry needs are deleted in the same locked step. */
  async remove(refTexts: string[]): Promise<{ removed: string[]; freedBytes: number }> {
    const targets: StoredImage[] = [];
    for (const text of refTexts) targets.push(await this.resolve(text));
    return this.withLock(async () => {
      const index = await this.readIndex();
      const names = new Set(targets.map((t) => t.refName));
      index.manifests = index.manifests.filter((d) => !names.has(d.annotations?.[Annotation.refName] ?? ''));
      await this.writeIndex(index);
      const freedBytes = await this.collectGarbage(index);
      return { removed: [...names], freedBytes };
    });
  }

  /** Must run under the lock: deletes every blob that no index entry reaches, and stale temp files. */
  private async collectGarbage(index: ImageIndex): Promise<number> {
    const reachable = new Set<string>();
    for (const d of index.manifests) {
      reachable.add(digestHex(d.digest as Digest));
      try {
        const manifest = await this.readManifest(d.digest as Digest);
        reachable.add(digestHex(manifest.config.digest as Digest));
        for (const layer of manifest.layers) reachable.add(digestHex(layer.digest as Digest));
      } catch {
        // An entry whose manifest cannot be read keeps nothing else alive, but collection must not fail on it.
      }
    }
    const dir = path.join(this.root, 'blobs', 'sha256');
    let freed = 0;
    for (const name of await fs.readdir(dir)) {
      if (reachable.has(name)) continue;
      const file = path.join(dir, name);
      const stat = await fs.stat(file).catch(() => undefined);
      if (!stat) continue;
      // Temp files of a writer that died are removed once they are clearly abandoned.
      if (name.endsWith('.tmp') && Date.now() - stat.mtimeMs < 60_000) continue;
      await fs.rm(file, { force: true });
      freed += stat.size;
    }
    return freed;
  }
}

export function parseManifest(bytes: Uint8Array, what: string): ImageManifest {
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as ImageManifest;
  } catch (err) {
    throw new UserError(`${what} is not valid JSON (${(err as Error).message}).`, undefined, 'E_BAD_MANIFEST');
  }
  const okDescriptor = (d: Descriptor | undefined) =>
    !!d && typeof d.mediaType === 'string' && typeof d.digest === 'string' && isDigest(d.digest) && Number.isInteger(d.size) && d.size >= 0;
  if (manifest?.schemaVersion !== 2 || !okDescriptor(manifest.config) || !Array.isArray(manifest.layers) || !manifest.layers.every(okDescriptor)) {
    throw new UserError(
      `${what} is not an image manifest (schemaVersion 2, a config descriptor and a list of layer descriptors).`,
      undefined,
      'E_BAD_MANIFEST',
    );
  }
  return manifest;
}
