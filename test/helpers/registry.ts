// Starts Debian's docker-registry (CNCF distribution) on 127.0.0.1 for tests and benchmarks, in three
// configurations: open, htpasswd Basic auth, and token auth with a small JWT issuer that lives here.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { requireTool, tempDir } from './env';

export interface StartedRegistry {
  /** host:port, as it appears in image references */
  host: string;
  url: string;
  root: string;
  issuer?: TokenIssuer;
  stop(): Promise<void>;
}

async function needTool(command: string): Promise<void> {
  if (!(await requireTool(command))) throw new Error(`${command} is not installed (apt-get install docker-registry apache2-utils openssl)`);
}

export const USERS: Record<string, string> = { alice: 'wonderland-42', bob: 'builder-7' };

export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A token service as the distribution spec describes it: Basic credentials in, a JWT out, signed with a
 * key whose certificate the registry trusts (`rootcertbundle`). Users get pull and push on every
 * repository; anonymous callers get nothing (so a 401 is what an anonymous push meets).
 */
export class TokenIssuer {
  readonly service = 'wasm-filter-test-registry';
  readonly issuer = 'wasm-filter-test-issuer';
  private server?: http.Server;
  port = 0;
  /** The next tokens issued are already expired, although `expires_in` says otherwise. */
  expiredTokensToIssue = 0;
  /** Requests the issuer served, for assertions. */
  readonly requests: { user?: string; scopes: string[] }[] = [];

  constructor(
    readonly certFile: string,
    private readonly keyPem: string,
    private readonly certDer: Buffer,
  ) {}

  static async create(dir: string): Promise<TokenIssuer> {
    await needTool('openssl');
    const key = path.join(dir, 'issuer.key');
    const cert = path.join(dir, 'issuer.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=wasm-filter-test-issuer'], { stdio: 'ignore' });
    const pem = readFileSync(cert, 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const issuer = new TokenIssuer(cert, readFileSync(key, 'utf8'), der);
    await issuer.listen();
    return issuer;
  }

  get realm(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  private async listen(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.realm);
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (!name || USERS[name] !== rest.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'invalid user name or password' }));
        return;
      }
      user = name;
    }
    this.requests.push({ ...(user ? { user } : {}), scopes });
    const access = user
      ? scopes.map((s) => {
          const [type, name, actions] = s.split(':');
          return { type, name, actions: actions === '*' ? ['*'] : (actions ?? '').split(',').filter(Boolean) };
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const expired = this.expiredTokensToIssue > 0;
    if (expired) this.expiredTokensToIssue--;
    const claims = {
      iss: this.issuer,
      sub: user ?? '',
      aud: this.service,
      iat: expired ? now - 3600 : now - 5,
      nbf: expired ? now - 3600 : now - 5,
      exp: expired ? now - 1800 : now + 300,
      jti: randomUUID(),
      access,
    };
    const header = { alg: 'RS256', typ: 'JWT', x5c: [this.certDer.toString('base64')] };
    const unsigned = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(unsigned).sign(this.keyPem);
    const token = `${unsigned}.${b64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

/** Starts a registry and waits until it answers. Stop it with `stop()` (tests do so in `after`). */
export async function startRegistry(options: { auth?: RegistryAuthMode; tls?: boolean } = {}): Promise<StartedRegistry> {
  await needTool('docker-registry');
  const auth = options.auth ?? 'none';
  const dir = tempDir('registry-');
  const root = path.join(dir, 'data');
  mkdirSync(root);
  const port = await freePort();
  let issuer: TokenIssuer | undefined;
  let authConfig = '';
  if (auth === 'htpasswd') {
    await needTool('htpasswd');
    const file = path.join(dir, 'htpasswd');
    writeFileSync(file, Object.entries(USERS).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim()).join('\n') + '\n');
    authConfig = `auth:\n  htpasswd:\n    realm: wasm-filter-test\n    path: ${file}\n`;
  } else if (auth === 'token') {
    issuer = await TokenIssuer.create(dir);
    authConfig = `auth:\n  token:\n    realm: ${issuer.realm}\n    service: ${issuer.service}\n    issuer: ${issuer.issuer}\n    rootcertbundle: ${issuer.certFile}\n`;
  }
  let tlsConfig = '';
  if (options.tls) {
    // A self-signed certificate, as a private registry often has.
    await needTool('openssl');
    const key = path.join(dir, 'tls.key');
    const cert = path.join(dir, 'tls.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    tlsConfig = `  tls:\n    certificate: ${cert}\n    key: ${key}\n`;
  }
  const config = path.join(dir, 'config.yml');
  writeFileSync(
    config,
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: wasm-filter-test-secret
${tlsConfig}${authConfig}`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${stderr}`);
    const status = await new Promise<number>((resolve) => {
      (options.tls ? https : http).get(`${options.tls ? 'https' : 'http'}://${host}/v2/`, { rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline) throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    url: `${options.tls ? 'https' : 'http'}://${host}`,
    root,
    ...(issuer ? { issuer } : {}),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      await issuer?.stop();
    },
  };
}
