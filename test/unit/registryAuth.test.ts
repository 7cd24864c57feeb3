import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerConfigCredentials, LoginStore, RegistryClient, listPublished, parseChallenges, registryEndpoint } from '../../src/core';
import { tempDir } from '../helpers/env';

describe('WWW-Authenticate challenges', () => {
  it('reads a Bearer challenge with quoted values holding commas', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' } });
  });

  it('reads several challenges in one header, and escaped quotes', () => {
    const challenges = parseChallenges('Basic realm="say \\"hi\\"", Bearer realm="https://t/x",error="invalid_token"');
    assert.deepEqual(
      challenges.map((c) => c.scheme),
      ['basic', 'bearer'],
    );
    assert.equal(challenges[0]!.params.realm, 'say "hi"');
    assert.equal(challenges[1]!.params.error, 'invalid_token');
  });

  it('gives nothing for an absent header', () => {
    assert.deepEqual(parseChallenges(undefined), []);
  });
});

describe('registry endpoints', () => {
  it('talks plain HTTP to loopback registries and HTTPS to the rest, unless told', () => {
    assert.equal(registryEndpoint('localhost:5000').protocol, 'http:');
    assert.equal(registryEndpoint('127.0.0.1:5000').protocol, 'http:');
    assert.equal(registryEndpoint('webassemblyhub.io').href, 'https://webassemblyhub.io/');
    assert.equal(registryEndpoint('docker.io').host, 'registry-1.docker.io');
    assert.equal(registryEndpoint('registry.internal:5000', true).protocol, 'http:');
    assert.equal(registryEndpoint('localhost:5000', false).protocol, 'https:');
    assert.equal(registryEndpoint('127.0.0.1:5000', undefined, true).protocol, 'https:', '--insecure means TLS');
  });
});

describe('credentials', () => {
  it("reads Docker's auths in every key form, and identity tokens", async () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    await fs.writeFile(
      file,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
          'http://registry.example.com:5000/v2/': { auth: Buffer.from('u:p:with:colons').toString('base64') },
          'quay.io': { auth: Buffer.from('robot:').toString('base64'), identitytoken: 'refresh-123' },
        },
      }),
    );
    const docker = new DockerConfigCredentials(file);
    assert.deepEqual(await docker.get('docker.io'), { username: 'hubuser', secret: 'hubpass' });
    assert.deepEqual(await docker.get('registry.example.com:5000'), { username: 'u', secret: 'p:with:colons' });
    assert.deepEqual(await docker.get('quay.io'), { username: 'robot', secret: 'refresh-123', identityToken: true });
    assert.equal(await docker.get('ghcr.io'), undefined);
  });

  it('a missing credential helper is a clear error', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.json');
    await fs.writeFile(file, JSON.stringify({ credsStore: 'no-such-helper-here' }));
    await assert.rejects(new DockerConfigCredentials(file).get('ghcr.io'), /docker-credential-no-such-helper-here is not on PATH/);
  });

  it('the login store keeps other entries, writes 0600, and forgets one registry on logout', async () => {
    const dir = tempDir();
    const logins = LoginStore.forHome(dir);
    await logins.save('a.example.com', { username: 'ann', secret: 's1' });
    await logins.save('b.example.com', { username: 'ben', secret: 's2' });
    await logins.save('a.example.com', { username: 'ann', secret: 's3' });
    assert.deepEqual(await logins.get('a.example.com'), { username: 'ann', secret: 's3' });
    assert.equal((await fs.stat(logins.file)).mode & 0o777, 0o600);
    assert.equal(await logins.remove('a.example.com'), true);
    assert.equal(await logins.remove('a.example.com'), false);
    assert.deepEqual(await logins.registries(), ['b.example.com']);
  });
});

/** WebAssembly Hub's search is Harbor's v1 API; this double answers the two calls wasme made. */
describe('WebAssembly Hub search (Harbor API)', () => {
  let server: http.Server;
  let host: string;
  const seen: string[] = [];
  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/api/search') {
        const q = url.searchParams.get('q') ?? '';
        const repos = ['alice/add-header', 'bob/add-header-v2', 'carol/rate-limit'].filter((r) => r.includes(q));
        res.end(JSON.stringify({ project: [], repository: repos.map((r) => ({ repository_name: r, project_name: r.split('/')[0], tags_count: 1 })) }));
      } else if (url.pathname.startsWith('/api/repositories/') && url.pathname.endsWith('/tags')) {
        res.end(
          JSON.stringify([
            {
              name: 'v1',
              digest: 'sha256:' + 'a'.repeat(64),
              size: 12600,
              push_time: '2020-03-01T10:00:00Z',
              annotations: { 'module.wasm.runtime/abi_version': 'v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f' },
            },
          ]),
        );
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('finds repositories and their tags with size, digest, ABI and push time', async () => {
    const images = await listPublished(new RegistryClient(host), { search: 'add-header', api: 'harbor' });
    assert.deepEqual(
      images.map((i) => [i.repository, i.tag, i.size, i.abi, i.updated]),
      [
        ['alice/add-header', 'v1', 12600, 'v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f', '2020-03-01T10:00:00Z'],
        ['bob/add-header-v2', 'v1', 12600, 'v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f', '2020-03-01T10:00:00Z'],
      ],
    );
    assert.ok(seen.includes('/api/search?q=add-header'));
  });
});
