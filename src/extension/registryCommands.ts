import * as vscode from 'vscode';
import { UserError } from '../core/errors';
import { formatSize } from '../core/format';
import { login } from '../core/registry/access';
import { pullImage, pushImage, type TransferProgress, type TransferResult } from '../core/registry/transfer';
import { familiarReference, formatReference, parseReference } from '../core/reference';
import { LoadMoreItem, RegistryItem, RegistryStateItem, RemoteTagItem, RepositoryItem, type RegistriesTree } from './registriesTree';
import type { RegistryService } from './registryService';
import type { StoreService } from './storeService';

type CommandFn = (id: string, handler: (...args: any[]) => unknown) => void;

/** Runs a transfer with a cancellable progress notification that shows bytes and percent. */
function withTransferProgress<T extends TransferResult>(title: string, work: (signal: AbortSignal, onProgress: (p: TransferProgress) => void) => Promise<T>): Thenable<T> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    const abort = new AbortController();
    token.onCancellationRequested(() => abort.abort());
    let reported = 0;
    return work(abort.signal, (p) => {
      const percent = p.bytesTotal ? Math.floor((p.bytesDone / p.bytesTotal) * 100) : 100;
      if (percent > reported) {
        progress.report({ increment: percent - reported, message: `${formatSize(p.bytesDone)} of ${formatSize(p.bytesTotal)}` });
        reported = percent;
      }
    });
  });
}

function registryOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg;
  if (arg instanceof RegistryItem) return arg.setting.registry;
  if (arg instanceof RegistryStateItem || arg instanceof LoadMoreItem || arg instanceof RepositoryItem) return arg.registry;
  if (arg instanceof RemoteTagItem) return arg.image.registry;
  return undefined;
}

function validateHost(value: string): string | undefined {
  const host = value.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  if (!host) return 'Give the registry host, e.g. registry.example.com or localhost:5000';
  try {
    parseReference(`${host}/probe:x`);
    return undefined;
  } catch {
    return `"${value}" is not a registry host[:port]`;
  }
}

export function registerRegistryCommands(
  command: CommandFn,
  deps: { registries: RegistryService; tree: RegistriesTree; store: StoreService; chooseImage: (arg: unknown) => Promise<string>; chooseProjectImage: (uri?: vscode.Uri) => Promise<string | undefined> },
): void {
  const { registries, tree, store } = deps;

  const pickRegistry = async (arg: unknown): Promise<string> => {
    const known = registryOf(arg);
    if (known) return known;
    const picked = await vscode.window.showQuickPick(
      registries.list().map((r) => ({ label: r.name ?? r.registry, description: r.registry, registry: r.registry })),
      { title: 'Which registry?' },
    );
    if (!picked) throw new UserError('No registry chosen.', undefined, 'E_CANCELLED');
    return picked.registry;
  };

  command('wasmFilter.refreshRegistries', () => tree.refresh());

  command('wasmFilter.addRegistry', async (given?: { registry: string; name?: string; plainHttp?: boolean; insecure?: boolean }) => {
    let setting = given;
    if (!setting) {
      const input = await vscode.window.showInputBox({ title: 'Add Registry (1/2)', prompt: 'Registry host, e.g. ghcr.io, registry.example.com:5000 or localhost:5000', validateInput: validateHost });
      if (!input) return undefined;
      const registry = input.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
      const name = await vscode.window.showInputBox({ title: 'Add Registry (2/2)', prompt: 'A name to show (optional)', value: registry });
      if (name === undefined) return undefined;
      const scheme = /^https?:\/\//i.exec(input.trim())?.[0].toLowerCase();
      setting = { registry, ...(name && name !== registry ? { name } : {}), ...(scheme === 'http://' ? { plainHttp: true } : {}) };
    }
    const error = validateHost(setting.registry);
    if (error) throw new UserError(error, undefined, 'E_USAGE');
    await registries.add(setting);
    tree.refresh();
    return setting.registry;
  });

  command('wasmFilter.removeRegistry', async (arg?: unknown) => {
    const registry = await pickRegistry(arg);
    await registries.remove(registry);
    tree.refresh();
  });

  command('wasmFilter.loginRegistry', async (arg?: unknown, given?: { username: string; secret: string }) => {
    const registry = await pickRegistry(arg);
    let credential = given;
    if (!credential) {
      const username = await vscode.window.showInputBox({ title: `Log in to ${registry} (1/2)`, prompt: 'User name', ignoreFocusOut: true });
      if (!username) return false;
      const secret = await vscode.window.showInputBox({ title: `Log in to ${registry} (2/2)`, prompt: `Password or token for ${username}`, password: true, ignoreFocusOut: true });
      if (!secret) return false;
      credential = { username, secret };
    }
    const setting = registries.find(registry);
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Logging in to ${registry}` }, () =>
      login(registry, credential!, {
        ...(setting.plainHttp ? { plainHttp: true } : {}),
        ...(setting.insecure ? { insecure: true } : {}),
        store: { save: (r, c) => registries.saveLogin(r, c) },
      }),
    );
    vscode.window.setStatusBarMessage(`Logged in to ${registry} as ${credential.username}`, 4000);
    tree.refresh();
    return true;
  });

  command('wasmFilter.logoutRegistry', async (arg?: unknown) => {
    const registry = await pickRegistry(arg);
    await registries.logout(registry);
    tree.refresh();
  });

  command('wasmFilter.searchRegistry', async (arg?: unknown, query?: string) => {
    const registry = await pickRegistry(arg);
    const q = query ?? (await vscode.window.showInputBox({ title: `Search ${registry}`, prompt: 'Repository name contains…', value: tree.getSearch(registry) ?? '' }));
    if (q === undefined) return;
    tree.setSearch(registry, q.trim() || undefined);
  });

  command('wasmFilter.clearRegistrySearch', async (arg?: unknown) => tree.setSearch(await pickRegistry(arg), undefined));

  command('wasmFilter.loadMoreRepositories', async (arg?: unknown) => tree.loadMore(await pickRegistry(arg)));

  command('wasmFilter.pullImage', async (arg?: unknown) => {
    const ref =
      arg instanceof RemoteTagItem
        ? arg.reference
        : typeof arg === 'string'
          ? arg
          : await vscode.window.showInputBox({ title: 'Pull Image', prompt: 'REGISTRY/NAME:TAG', validateInput: (v) => (refError(v) ?? undefined) });
    if (!ref) return undefined;
    const local = await store.open();
    const result = await withTransferProgress(`Pulling ${ref}`, (signal, onProgress) => pullImage(local, ref, { clients: registries.factory(signal), onProgress }));
    store.notifyChanged();
    vscode.window.setStatusBarMessage(`Pulled ${result.image.refName}`, 4000);
    return result.image.refName;
  });

  command('wasmFilter.copyRemoteReference', async (arg?: unknown) => {
    if (!(arg instanceof RemoteTagItem)) return undefined;
    const text = arg.image.manifestDigest ? `${arg.reference}@${arg.image.manifestDigest}` : arg.reference;
    await vscode.env.clipboard.writeText(text);
    vscode.window.setStatusBarMessage(`Copied ${text}`, 3000);
    return text;
  });

  command('wasmFilter.deleteRemoteImage', async (arg?: unknown, confirmed?: boolean) => {
    let target: { registry: string; repository: string; reference: string; digest?: string };
    if (arg instanceof RemoteTagItem) {
      target = { registry: arg.image.registry, repository: arg.image.repository, reference: arg.reference, ...(arg.image.manifestDigest ? { digest: arg.image.manifestDigest } : {}) };
    } else if (typeof arg === 'string') {
      const ref = parseReference(arg);
      const head = ref.digest ? { digest: ref.digest } : await registries.client(ref.registry).headManifest(ref.repository, ref.tag ?? 'latest');
      if (!head) throw new UserError(`${arg} does not exist in its registry.`, 'Refresh the Registries view.', 'E_NOT_FOUND');
      target = { registry: ref.registry, repository: ref.repository, reference: formatReference(ref), digest: head.digest };
    } else {
      throw new UserError('Choose a tag in the Registries view to delete.', undefined, 'E_USAGE');
    }
    const digest = target.digest as `sha256:${string}` | undefined;
    if (!digest) throw new UserError(`The digest of ${target.reference} is not known, so it cannot be deleted.`, 'Refresh the view and try again.');
    if (!confirmed) {
      const answer = await vscode.window.showWarningMessage(
        `Delete ${target.reference} from ${target.registry}?`,
        { modal: true, detail: `This removes manifest ${digest.slice(0, 19)}… and every tag that points at it. It cannot be undone.` },
        'Delete',
      );
      if (answer !== 'Delete') return false;
    }
    await registries.client(target.registry).deleteManifest(target.repository, digest);
    tree.refresh();
    return true;
  });

  command('wasmFilter.pushImage', async (arg?: unknown, target?: string) => {
    const ref =
      arg instanceof vscode.Uri
        ? ((await deps.chooseProjectImage(arg)) ?? (await deps.chooseImage(undefined)))
        : arg === undefined
          ? ((await deps.chooseProjectImage()) ?? (await deps.chooseImage(undefined)))
          : await deps.chooseImage(arg);
    const local = await store.open();
    const image = await local.resolve(ref);
    const destination =
      target ??
      (await vscode.window.showInputBox({
        title: `Push ${familiarReference(image.reference)}`,
        prompt: 'Push as REGISTRY/NAME:TAG (names without a registry go to WebAssembly Hub)',
        value: formatReference(image.reference),
        validateInput: (v) => refError(v) ?? undefined,
      }));
    if (!destination) return undefined;
    const result = await withTransferProgress(`Pushing ${destination}`, (signal, onProgress) =>
      pushImage(local, ref, { clients: registries.factory(signal), ...(destination !== formatReference(image.reference) ? { target: destination } : {}), onProgress }),
    );
    tree.refresh();
    vscode.window.setStatusBarMessage(`Pushed ${familiarReference(result.reference)} (${formatSize(result.bytesTransferred)} uploaded)`, 5000);
    return { reference: formatReference(result.reference), manifestDigest: result.manifestDigest, bytesTransferred: result.bytesTransferred };
  });
}

function refError(value: string): string | undefined {
  try {
    parseReference(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
