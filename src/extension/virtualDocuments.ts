import * as vscode from 'vscode';
import { readImageContent } from '../core/image/wasmImage';
import { summarizeImage } from '../core/imageSummary';
import { disassembleModule } from '../core/wasm/disassemble';
import type { StoreService } from './storeService';

export const WAT_SCHEME = 'wasm-filter-wat';
export const INSPECT_SCHEME = 'wasm-filter-inspect';

/** Read-only documents: a module as WebAssembly text, and an image's inspection as JSON. */
export class VirtualDocuments implements vscode.TextDocumentContentProvider {
  constructor(private readonly store: StoreService) {}

  static watUri(source: { ref: string } | { file: string }): vscode.Uri {
    const label = 'ref' in source ? source.ref.replace(/[/:@]/g, '_') : source.file.split(/[\\/]/).pop()!;
    const query = 'ref' in source ? `ref=${encodeURIComponent(source.ref)}` : `file=${encodeURIComponent(source.file)}`;
    return vscode.Uri.from({ scheme: WAT_SCHEME, path: `/${label}.wat`, query });
  }

  static inspectUri(ref: string): vscode.Uri {
    return vscode.Uri.from({ scheme: INSPECT_SCHEME, path: `/${ref.replace(/[/:@]/g, '_')}.json`, query: `ref=${encodeURIComponent(ref)}` });
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const params = new URLSearchParams(uri.query);
    const ref = params.get('ref');
    const file = params.get('file');
    if (uri.scheme === WAT_SCHEME) {
      let bytes: Uint8Array;
      if (file) {
        bytes = await vscode.workspace.fs.readFile(vscode.Uri.file(file));
      } else {
        const store = await this.store.open();
        bytes = (await readImageContent(store, await store.resolve(ref!))).wasm;
      }
      return disassembleModule(bytes);
    }
    const store = await this.store.open();
    const image = await store.resolve(ref!);
    const summary = await summarizeImage(store, image);
    const config = JSON.parse((await store.readBlob(image.manifest.config.digest as never)).toString('utf8'));
    return JSON.stringify({ ...summary, manifest: image.manifest, config }, null, 2) + '\n';
  }
}
