import { Command, Option } from 'commander';
import {
  DEFAULT_REGISTRY,
  LocalStore,
  LoginStore,
  UserError,
  assertSearchApi,
  clientFactory,
  copyImage,
  familiarReference,
  formatReference,
  formatSize,
  formatTable,
  formatUpdated,
  listPublished,
  login,
  pullImage,
  pushImage,
  resolveHome,
  parseReference,
  shortDigest,
  type ConnectionOptions,
  type Credential,
  type PublishedImage,
  type TransferProgress,
  type TransferResult,
} from '../core';
import type { Output } from './output';

interface ConnectionFlags {
  plainHttp?: boolean;
  insecure?: boolean;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

/** The connection flags wasme had on push and pull, on every command that talks to a registry. */
export function connectionOptions(command: Command, withCredentials = true): Command {
  command
    .option('--plain-http', 'use HTTP, not HTTPS (the default for localhost and 127.0.0.1)')
    .option('--insecure', "accept the registry's self-signed TLS certificate");
  if (withCredentials) {
    command.option('-u, --username <user>', 'log in with this user for this command only').option('-p, --password <password>', 'the password (prefer --password-stdin)');
  }
  return command;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function credentialFrom(flags: ConnectionFlags, registry: string, interactive: boolean): Promise<Credential | undefined> {
  if (!flags.username && !flags.password && !flags.passwordStdin) return undefined;
  if (!flags.username) throw new UserError('A password was given without a user name.', 'Add -u USER.', 'E_USAGE');
  let secret = flags.password;
  if (flags.passwordStdin) {
    if (flags.password) throw new UserError('Give the password with -p or --password-stdin, not both.', undefined, 'E_USAGE');
    secret = await readStdin();
  }
  if (!secret && interactive) secret = await (await import('@inquirer/prompts')).password({ message: `Password for ${flags.username} at ${registry}:`, mask: '*' });
  if (!secret) throw new UserError(`No password for ${flags.username}.`, 'Pipe it into --password-stdin, or run in a terminal to be asked.', 'E_USAGE');
  return { username: flags.username, secret };
}

function connection(flags: ConnectionFlags, signal: AbortSignal, credential?: Credential): ConnectionOptions {
  return {
    ...(flags.plainHttp ? { plainHttp: true } : {}),
    ...(flags.insecure ? { insecure: true } : {}),
    ...(credential ? { credential } : {}),
    signal,
  };
}

/** `[#####-----] 45% 1.2 MB / 2.6 MB` */
function progressLine(verb: string, what: string, p: TransferProgress): string {
  const fraction = p.bytesTotal ? p.bytesDone / p.bytesTotal : 1;
  const width = 20;
  const filled = Math.round(fraction * width);
  return `${verb} ${what} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.round(fraction * 100)}% ${formatSize(p.bytesDone)} / ${formatSize(p.bytesTotal)}`;
}

function transferSummary(result: TransferResult): string {
  const counts = new Map<string, number>();
  for (const b of result.blobs) counts.set(b.state, (counts.get(b.state) ?? 0) + 1);
  const parts = [...counts.entries()].map(([state, n]) => `${n} ${state}`);
  return `${formatSize(result.bytesTransferred)} transferred; blobs: ${parts.join(', ')}`;
}

export function addRegistryCommands(program: Command, out: Output, helpers: { interruptSignal: () => AbortSignal; openStore: (opts: { store?: string }) => Promise<LocalStore>; storeOption: () => Option }): void {
  const interactive = () => !!process.stdin.isTTY && !!process.stdout.isTTY;

  connectionOptions(
    program
      .command('login')
      .description('log in to a registry; the login is checked, then kept in $WASM_FILTER_HOME/auth.json (mode 0600)')
      .argument('[server]', 'the registry host', DEFAULT_REGISTRY)
      .option('--password-stdin', 'read the password from standard input'),
  ).action(async (server: string, opts: ConnectionFlags) => {
    const username = opts.username ?? (interactive() ? await import('@inquirer/prompts').then((m) => m.input({ message: `User name at ${server}:` })) : undefined);
    if (!username) throw new UserError(`Logging in to ${server} needs a user name.`, 'Give it with -u USER.', 'E_USAGE');
    const credential = await credentialFrom({ ...opts, username }, server, interactive());
    if (!credential) throw new UserError('No password given.', 'Use --password-stdin.', 'E_USAGE');
    const store = LoginStore.forHome(resolveHome());
    const { verified } = await login(server, credential, { ...connection(opts, helpers.interruptSignal()), store });
    out.line(verified ? `Logged in to ${server} as ${credential.username}.` : `Saved the login for ${server}; it does not ask for credentials, so they were not checked.`);
  });

  program
    .command('logout')
    .description('forget the login for a registry')
    .argument('[server]', 'the registry host', DEFAULT_REGISTRY)
    .action(async (server: string) => {
      const removed = await LoginStore.forHome(resolveHome()).remove(server);
      out.line(removed ? `Logged out of ${server}.` : `There was no login for ${server} in ${LoginStore.forHome(resolveHome()).file}.`);
    });

  connectionOptions(
    program
      .command('push')
      .description('push a stored image to its registry (names without a registry go to ' + DEFAULT_REGISTRY + ')')
      .argument('<ref>', 'an image in the local store')
      .argument('[target]', 'push under another name (REGISTRY/NAME:TAG)')
      .option('--json', 'print the result as JSON')
      .addOption(helpers.storeOption()),
  ).action(async (ref: string, target: string | undefined, opts: ConnectionFlags & { store?: string; json?: boolean }) => {
    const store = await helpers.openStore(opts);
    const image = await store.resolve(ref).catch(() => undefined);
    const registry = target ? parseReference(target).registry : (image?.reference.registry ?? DEFAULT_REGISTRY);
    const credential = await credentialFrom(opts, registry, interactive());
    const clients = clientFactory(connection(opts, helpers.interruptSignal(), credential));
    const name = target ?? ref;
    const result = await pushImage(store, ref, { clients, ...(target ? { target } : {}), onProgress: (p) => out.status(progressLine('pushing', name, p)) });
    out.clearStatus();
    if (opts.json) {
      out.line(JSON.stringify({ reference: formatReference(result.reference), manifestDigest: result.manifestDigest, bytesTransferred: result.bytesTransferred, blobs: result.blobs }, null, 2));
      return;
    }
    out.line(`${out.green('Pushed')} ${familiarReference(result.reference)}`);
    out.info(out.dim(transferSummary(result)));
  });

  connectionOptions(
    program
      .command('pull')
      .description('pull an image into the local store (every digest and size is checked first)')
      .argument('<ref>', 'REGISTRY/NAME[:TAG|@DIGEST]')
      .option('--json', 'print the result as JSON')
      .addOption(helpers.storeOption()),
  ).action(async (ref: string, opts: ConnectionFlags & { store?: string; json?: boolean }) => {
    const store = await helpers.openStore(opts);
    const registry = parseReference(ref).registry;
    const credential = await credentialFrom(opts, registry, interactive());
    const clients = clientFactory(connection(opts, helpers.interruptSignal(), credential));
    const result = await pullImage(store, ref, { clients, onProgress: (p) => out.status(progressLine('pulling', ref, p)) });
    out.clearStatus();
    if (opts.json) {
      out.line(JSON.stringify({ reference: result.image.refName, manifestDigest: result.manifestDigest, bytesTransferred: result.bytesTransferred, blobs: result.blobs }, null, 2));
      return;
    }
    out.line(`${out.green('Pulled')} ${result.image.refName} ${out.dim(`(${result.manifestDigest})`)}`);
    out.info(out.dim(transferSummary(result)));
  });

  connectionOptions(
    program
      .command('copy')
      .description('copy an image from one registry repository to another, without the local store')
      .argument('<source>', 'REGISTRY/NAME:TAG')
      .argument('<target>', 'REGISTRY/NAME:TAG'),
  ).action(async (source: string, target: string, opts: ConnectionFlags) => {
    const credential = await credentialFrom(opts, parseReference(target).registry, interactive());
    const clients = clientFactory(connection(opts, helpers.interruptSignal(), credential));
    const result = await copyImage(source, target, { clients, onProgress: (p) => out.status(progressLine('copying', source, p)) });
    out.clearStatus();
    out.line(`${out.green('Copied')} ${source} → ${familiarReference(result.reference)}`);
    out.info(out.dim(transferSummary(result)));
  });
}

/** `list --published`: the images in a registry, as wasme listed them. */
export async function listPublishedCommand(
  out: Output,
  opts: ConnectionFlags & { server?: string; search?: string; api?: string; json?: boolean; wide?: boolean },
  signal: AbortSignal,
): Promise<void> {
  const server = opts.server ?? DEFAULT_REGISTRY;
  const credential = await credentialFrom(opts, server, false);
  const client = clientFactory(connection(opts, signal, credential))(server);
  const images = await listPublished(client, { ...(opts.search ? { search: opts.search } : {}), ...(opts.api ? { api: assertSearchApi(opts.api) } : {}) });
  if (opts.json) {
    out.line(JSON.stringify(images, null, 2));
    return;
  }
  out.line(formatTable(['NAME', 'TAG', 'SIZE', 'SHA', 'UPDATED'], images.map((i) => publishedRow(i, !!opts.wide))));
}

function publishedRow(i: PublishedImage, wide: boolean): string[] {
  const digest = i.layerDigest ?? i.manifestDigest;
  return [
    `${i.registry}/${i.repository}`,
    i.tag,
    i.size === undefined ? '-' : wide ? `${i.size} B` : formatSize(i.size),
    digest ? (wide ? digest : shortDigest(digest)) : '-',
    formatUpdated(i.updated ? new Date(i.updated) : undefined),
  ];
}

