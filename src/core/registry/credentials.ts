import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../errors';
import { writeFileAtomic } from '../fsAtomic';

/** A user name and secret for one registry. `identityToken` is an OAuth2 refresh token (Docker's `identitytoken`). */
export interface Credential {
  username: string;
  secret: string;
  identityToken?: boolean;
}

/** Where credentials come from: the tool's own logins, Docker's config, VS Code's SecretStorage, flags… */
export interface CredentialSource {
  readonly description: string;
  get(registry: string): Promise<Credential | undefined>;
}

/** Docker Hub is stored under its v1 index URL in Docker's config; everything else under its host. */
const DOCKER_HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

/** The key forms a registry may be stored under: `host`, `https://host`, `http://host/v2/`, … */
function keyMatches(key: string, registry: string): boolean {
  if (registry === 'docker.io' && DOCKER_HUB_KEYS.includes(key)) return true;
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return host === registry;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

async function readConfigFile(file: string): Promise<DockerConfigFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as DockerConfigFile;
  } catch (err) {
    throw new UserError(`${file} is not valid JSON (${(err as Error).message}).`, 'Fix or remove the file, then log in again.', 'E_BAD_AUTH_FILE');
  }
}

function fromAuthEntry(entry: NonNullable<DockerConfigFile['auths']>[string]): Credential | undefined {
  if (entry.identitytoken) {
    const username = entry.auth ? Buffer.from(entry.auth, 'base64').toString('utf8').split(':')[0] ?? '' : (entry.username ?? '');
    return { username, secret: entry.identitytoken, identityToken: true };
  }
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    return { username: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { username: entry.username, secret: entry.password };
  return undefined;
}

/** Runs `docker-credential-<helper> get` with the server on stdin, as Docker does. */
export async function runCredentialHelper(helper: string, registry: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const program = `docker-credential-${helper}`;
  const server = registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry;
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(
          new UserError(
            `Docker's config names the credential helper "${helper}", but ${program} is not on PATH.`,
            `Install ${program}, or remove "${helper}" from credsStore/credHelpers in Docker's config.json.`,
            'E_CREDENTIAL_HELPER',
          ),
        );
      } else reject(err);
    });
    child.on('close', (c) => resolve({ code: c ?? 1, stdout, stderr }));
    child.stdin.end(server);
  });
  // Helpers say "credentials not found" for a server they hold nothing for: that is not an error.
  if (code !== 0) {
    if (/not found/i.test(stdout + stderr)) return undefined;
    throw new UserError(`${program} failed for ${registry}: ${(stderr || stdout).trim().slice(0, 300)}`, undefined, 'E_CREDENTIAL_HELPER');
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new UserError(`${program} printed something that is not JSON.`, undefined, 'E_CREDENTIAL_HELPER');
  }
  if (!parsed.Secret) return undefined;
  // Docker's convention: the user name "<token>" marks an identity token.
  if (parsed.Username === '<token>') return { username: '', secret: parsed.Secret, identityToken: true };
  return { username: parsed.Username ?? '', secret: parsed.Secret };
}

/** Docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`): `auths`, `credHelpers`, then `credsStore`. */
export class DockerConfigCredentials implements CredentialSource {
  readonly description: string;
  constructor(
    readonly file: string = DockerConfigCredentials.defaultFile(),
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.description = `Docker's ${file}`;
  }

  static defaultFile(env: NodeJS.ProcessEnv = process.env): string {
    return path.join(env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
  }

  async get(registry: string): Promise<Credential | undefined> {
    const config = await readConfigFile(this.file);
    if (!config) return undefined;
    const helper = Object.entries(config.credHelpers ?? {}).find(([k]) => keyMatches(k, registry))?.[1];
    if (helper) return runCredentialHelper(helper, registry, this.env);
    const fromAuths = await new DockerAuthsCredentials(config, this.description).get(registry);
    if (fromAuths) return fromAuths;
    if (config.credsStore) return runCredentialHelper(config.credsStore, registry, this.env);
    return undefined;
  }
}

/**
 * The tool's own logins, `$WASM_FILTER_HOME/auth.json` in Docker's config form (readable by docker and
 * oras with `--config`), written atomically with mode 0600.
 */
export class LoginStore implements CredentialSource {
  readonly description: string;
  constructor(readonly file: string) {
    this.description = `wasm-filter's ${file}`;
  }

  static forHome(home: string): LoginStore {
    return new LoginStore(path.join(home, 'auth.json'));
  }

  async get(registry: string): Promise<Credential | undefined> {
    const config = await readConfigFile(this.file);
    const entry = Object.entries(config?.auths ?? {}).find(([k]) => keyMatches(k, registry))?.[1];
    return entry ? fromAuthEntry(entry) : undefined;
  }

  async save(registry: string, credential: Credential): Promise<void> {
    const config = (await readConfigFile(this.file)) ?? {};
    const auths = Object.fromEntries(Object.entries(config.auths ?? {}).filter(([k]) => !keyMatches(k, registry)));
    auths[registry] = credential.identityToken
      ? { auth: Buffer.from(`${credential.username}:`).toString('base64'), identitytoken: credential.secret }
      : { auth: Buffer.from(`${credential.username}:${credential.secret}`).toString('base64') };
    await writeFileAtomic(this.file, JSON.stringify({ ...config, auths }, null, 2) + '\n', { mode: 0o600 });
  }

  /** Returns whether there was a login to remove. */
  async remove(registry: string): Promise<boolean> {
    const config = await readConfigFile(this.file);
    if (!config?.auths) return false;
    const kept = Object.fromEntries(Object.entries(config.auths).filter(([k]) => !keyMatches(k, registry)));
    if (Object.keys(kept).length === Object.keys(config.auths).length) return false;
    await writeFileAtomic(this.file, JSON.stringify({ ...config, auths: kept }, null, 2) + '\n', { mode: 0o600 });
    return true;
  }

  async registries(): Promise<string[]> {
    const config = await readConfigFile(this.file);
    return Object.keys(config?.auths ?? {});
  }
}

/** Fixed credentials, from `-u/-p` flags or a prompt. */
export class StaticCredentials implements CredentialSource {
  readonly description = 'the credentials given on the command line';
  constructor(private readonly credential: Credential) {}
  async get(): Promise<Credential | undefined> {
    return this.credential;
  }
}

/** The first source that knows the registry wins; the order is the caller's precedence. */
export class CredentialChain implements CredentialSource {
  constructor(private readonly sources: CredentialSource[]) {}
  get description(): string {
    return this.sources.map((s) => s.description).join(', then ');
  }
  async get(registry: string): Promise<Credential | undefined> {
    for (const source of this.sources) {
      const found = await source.get(registry);
      if (found) return found;
    }
    return undefined;
  }
  /** Which source holds the registry's credential, for messages such as "rejected the credentials from …". */
  async sourceOf(registry: string): Promise<CredentialSource | undefined> {
    for (const source of this.sources) if (await source.get(registry)) return source;
    return undefined;
  }
}

/** The `auths` of a Docker config held in memory, e.g. a kubernetes.io/dockerconfigjson Secret's data. */
export class DockerAuthsCredentials implements CredentialSource {
  constructor(
    private readonly config: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }> },
    readonly description: string,
  ) {}
  async get(registry: string): Promise<Credential | undefined> {
    for (const [key, entry] of Object.entries(this.config.auths ?? {})) {
      if (keyMatches(key, registry)) {
        const found = fromAuthEntry(entry);
        if (found) return found;
      }
    }
    return undefined;
  }
}
