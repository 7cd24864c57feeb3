import * as vscode from 'vscode';
import { defaultCredentials } from '../core/registry/access';
import { CredentialChain, type Credential, type CredentialSource } from '../core/registry/credentials';
import { RegistryClient } from '../core/registry/registryClient';
import type { SearchApi } from '../core/registry/published';
import type { ClientFactory } from '../core/registry/transfer';
import { DEFAULT_REGISTRY, parseReference } from '../core/reference';
import { pullCredentialFor } from '../core/deploy/deployImage';

/** A registry the user added, as kept in the `wasmFilter.registries` setting (never with a secret). */
export interface RegistrySetting {
  name?: string;
  /** host[:port] */
  registry: string;
  plainHttp?: boolean;
  insecure?: boolean;
  searchApi?: SearchApi;
}

const SECRET_PREFIX = 'wasmFilter.registryCredential:';

/** Logins kept in VS Code's SecretStorage (the OS keychain), never in settings or files. */
class SecretStorageCredentials implements CredentialSource {
  readonly description = "VS Code's secret storage";
  constructor(private readonly secrets: vscode.SecretStorage) {}
  async get(registry: string): Promise<Credential | undefined> {
    const text = await this.secrets.get(SECRET_PREFIX + registry);
    if (!text) return undefined;
    try {
      const c = JSON.parse(text) as Credential;
      return c.secret ? c : undefined;
    } catch {
      return undefined;
    }
  }
}

/** The registries of the Registries view: their settings, their logins, and clients to talk to them. */
export class RegistryService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly credentials: CredentialChain;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly secrets: vscode.SecretStorage) {
    // SecretStorage first; then what the CLI and Docker already know, so a `docker login` works here too.
    this.credentials = new CredentialChain([new SecretStorageCredentials(secrets), defaultCredentials()]);
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('wasmFilter.registries')) this.changed.fire();
      }),
      secrets.onDidChange((e) => {
        if (e.key.startsWith(SECRET_PREFIX)) this.changed.fire();
      }),
    );
  }

  list(): RegistrySetting[] {
    const configured = vscode.workspace.getConfiguration('wasmFilter').get<RegistrySetting[]>('registries');
    const list = Array.isArray(configured) ? configured.filter((r) => r && typeof r.registry === 'string' && r.registry.trim()) : [];
    return list.length || configured ? list : [{ name: 'WebAssembly Hub', registry: DEFAULT_REGISTRY }];
  }

  find(registry: string): RegistrySetting {
    return this.list().find((r) => r.registry === registry) ?? { registry };
  }

  async add(setting: RegistrySetting): Promise<void> {
    const list = this.list().filter((r) => r.registry !== setting.registry);
    await vscode.workspace.getConfiguration('wasmFilter').update('registries', [...list, setting], vscode.ConfigurationTarget.Global);
  }

  async remove(registry: string): Promise<void> {
    await vscode.workspace.getConfiguration('wasmFilter').update(
      'registries',
      this.list().filter((r) => r.registry !== registry),
      vscode.ConfigurationTarget.Global,
    );
    await this.secrets.delete(SECRET_PREFIX + registry);
  }

  async saveLogin(registry: string, credential: Credential): Promise<void> {
    await this.secrets.store(SECRET_PREFIX + registry, JSON.stringify(credential));
  }

  async logout(registry: string): Promise<boolean> {
    const had = !!(await this.secrets.get(SECRET_PREFIX + registry));
    await this.secrets.delete(SECRET_PREFIX + registry);
    return had;
  }

  async hasLogin(registry: string): Promise<boolean> {
    return !!(await this.credentials.get(registry).catch(() => undefined));
  }

  client(registry: string, signal?: AbortSignal, credential?: Credential): RegistryClient {
    const s = this.find(registry);
    return new RegistryClient(registry, {
      credentials: credential ? new CredentialChain([{ description: 'the credentials just entered', get: async () => credential }]) : this.credentials,
      ...(s.plainHttp ? { plainHttp: true } : {}),
      ...(s.insecure ? { insecure: true } : {}),
      ...(signal ? { signal } : {}),
    });
  }

  /** The login Istio needs to pull a private image (see pullCredentialFor), from SecretStorage, the CLI's or Docker's. */
  async pullCredential(image: string): Promise<{ registry: string; username: string; secret: string } | undefined> {
    const s = this.find(parseReference(image).registry);
    return pullCredentialFor(image, { credentials: this.credentials, ...(s.plainHttp ? { plainHttp: true } : {}), ...(s.insecure ? { insecure: true } : {}) });
  }

  /** One client per registry for an operation that may touch several. */
  factory(signal?: AbortSignal): ClientFactory {
    const clients = new Map<string, RegistryClient>();
    return (registry) => {
      let c = clients.get(registry);
      if (!c) clients.set(registry, (c = this.client(registry, signal)));
      return c;
    };
  }

  dispose(): void {
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
