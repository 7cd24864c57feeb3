import { resolveHome } from '../home';
import { UserError } from '../errors';
import { CredentialChain, DockerConfigCredentials, LoginStore, StaticCredentials, type Credential, type CredentialSource } from './credentials';
import { RegistryClient, type RegistryClientOptions } from './registryClient';
import type { ClientFactory } from './transfer';

/** The tool's own logins first, then Docker's config (so a `docker login` or `oras login` works here too). */
export function defaultCredentials(env: NodeJS.ProcessEnv = process.env): CredentialChain {
  return new CredentialChain([LoginStore.forHome(resolveHome(env)), new DockerConfigCredentials(DockerConfigCredentials.defaultFile(env), env)]);
}

export interface ConnectionOptions extends Omit<RegistryClientOptions, 'credentials'> {
  /** `-u/-p`: used instead of any stored login. */
  credential?: Credential;
  credentials?: CredentialSource;
}

/** Makes clients with the same connection options for every registry an operation touches. */
export function clientFactory(options: ConnectionOptions = {}): ClientFactory {
  const credentials = options.credential ? new StaticCredentials(options.credential) : (options.credentials ?? defaultCredentials());
  const clients = new Map<string, RegistryClient>();
  return (registry) => {
    let client = clients.get(registry);
    if (!client) {
      client = new RegistryClient(registry, { ...options, credentials });
      clients.set(registry, client);
    }
    return client;
  };
}

/**
 * Checks credentials against the registry and, when they work, keeps them in `store`.
 * Returns whether the registry actually asked for them (an open registry accepts anything).
 */
export async function login(
  registry: string,
  credential: Credential,
  options: Omit<ConnectionOptions, 'credential' | 'credentials'> & { store: { save(registry: string, credential: Credential): Promise<void> } },
): Promise<{ verified: boolean }> {
  if (!credential.username && !credential.identityToken) throw new UserError('A user name is needed to log in.', 'Give it with -u USER.', 'E_USAGE');
  if (!credential.secret) throw new UserError('A password or token is needed to log in.', 'Give it with --password-stdin (or -p).', 'E_USAGE');
  const client = new RegistryClient(registry, { ...options, credentials: new StaticCredentials(credential) });
  const { challenged } = await client.checkLogin();
  await options.store.save(registry, credential);
  return { verified: challenged };
}
