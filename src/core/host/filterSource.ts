import { watch, promises as fs, type FSWatcher } from 'node:fs';
import * as path from 'node:path';
import { buildProject } from '../build/build';
import { sha256Digest } from '../digest';
import { UserError } from '../errors';
import { readImageContent } from '../image/wasmImage';
import { PROJECT_FILE, loadProject } from '../project/projectManifest';
import type { LocalStore } from '../store/localStore';

/** A module to run, where it came from, and how to notice that it was rebuilt. */
export interface FilterSource {
  description: string;
  wasm: Uint8Array;
  rootId?: string;
  /** Calls back (debounced) with the new module whenever it changes; returns a stop function. */
  watch(onChange: (wasm: Uint8Array) => void): () => void;
}

function watchFile(file: string, read: () => Promise<Uint8Array>, onChange: (wasm: Uint8Array) => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let last = '';
  let watcher: FSWatcher | undefined;
  // Watch the folder: builds replace the file by rename, which ends a watch on the file itself.
  try {
    watcher = watch(path.dirname(file), (_event, name) => {
      if (name && name.toString() !== path.basename(file)) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        void read().then(
          (wasm) => {
            const key = sha256Digest(wasm);
            if (key === last) return;
            last = key;
            onChange(wasm);
          },
          () => undefined,
        );
      }, 200);
    });
  } catch {
    return () => undefined;
  }
  return () => {
    clearTimeout(timer);
    watcher?.close();
  };
}

/**
 * What `wasm-filter run DIR|FILE.wasm|REF` runs: a project's built module (built first if needed), a module
 * file, or an image from the store.
 */
export async function resolveFilterSource(target: string, options: { store: () => Promise<LocalStore>; signal?: AbortSignal; onLog?: (line: string) => void }): Promise<FilterSource> {
  const stat = await fs.stat(target).catch(() => undefined);
  if (stat?.isDirectory()) {
    if (!(await fs.stat(path.join(target, PROJECT_FILE)).catch(() => undefined))) {
      throw new UserError(`${target} is not a filter project (no ${PROJECT_FILE}).`, 'Give a project folder, a .wasm file, or an image reference.', 'E_BAD_PROJECT');
    }
    const project = await loadProject(target);
    const file = path.join(project.dir, project.manifest.build.output);
    if (!(await fs.stat(file).catch(() => undefined))) {
      options.onLog?.(`${path.relative(process.cwd(), file) || file} is not built yet; building it first`);
      await buildProject(project.dir, { store: await options.store(), ...(options.signal ? { signal: options.signal } : {}), ...(options.onLog ? { onLog: options.onLog } : {}) });
    }
    const shown = path.relative(process.cwd(), file);
    return {
      description: `${project.manifest.name} (${shown && !shown.startsWith('..') ? shown : file})`,
      wasm: await fs.readFile(file),
      rootId: project.manifest.rootId,
      watch: (onChange) => watchFile(file, () => fs.readFile(file), onChange),
    };
  }
  if (stat?.isFile()) {
    return { description: target, wasm: await fs.readFile(target), watch: (onChange) => watchFile(target, () => fs.readFile(target), onChange) };
  }
  const store = await options.store();
  const image = await store.resolve(target);
  const content = await readImageContent(store, image);
  const index = path.join(store.root, 'index.json');
  const read = async () => readImageContent(store, await store.resolve(target)).then((c) => c.wasm);
  return { description: image.refName, wasm: content.wasm, ...(content.rootIds[0] ? { rootId: content.rootIds[0] } : {}), watch: (onChange) => watchFile(index, read, onChange) };
}
