// The registry client against a real registry (Debian's docker-registry) and an independent client (skopeo).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  LocalStore,
  RegistryClient,
  StaticCredentials,
  clientFactory,
  pullImage,
  pushImage,
  sha256Digest,
  type RegistryError,
} from '../../src/core';
import { requireTool, runCli, snapshotTree, tempDir } from '../helpers/env';
import { FaultyProxy } from '../helpers/faultyProxy';
import { startRegistry, USERS, type StartedRegistry } from '../helpers/registry';
import { filterWat, wat } from '../helpers/wasm';

const run = promisify(execFile);

/** A filter module and a home with it built as `ref` (both image variants are built by `build precompiled`). */
async function homeWithImage(ref: string, variant: 'oci' | 'compat' = 'oci', home = tempDir()): Promise<{ home: string; wasm: Buffer }> {
  const wasm = await wat(filterWat({ rootId: `root_${path.basename(home)}` }));
  const file = path.join(home, 'filter.wasm');
  await fs.writeFile(file, wasm);
  const built = await runCli(['build', 'precompiled', file, '-t', ref, '--root-id', 'add_header', '--variant', variant], { home });
  assert.equal(built.code, 0, built.stderr);
  return { home, wasm };
}

async function inspect(home: string, ref: string): Promise<{ manifestDigest: string; wasmDigest: string; variant: string }> {
  const r = await runCli(['inspect', ref, '--json'], { home });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function json<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

interface PushJson {
  manifestDigest: string;
  bytesTransferred: number;
  blobs: { state: string }[];
}

describe('registry: an open registry', () => {
  let reg: StartedRegistry;
  before(async () => {
    reg = await startRegistry();
  });
  after(async () => reg?.stop());

  for (const variant of ['oci', 'compat'] as const) {
    it(`round trip (${variant}): push, remove, pull gives the same manifest digest and a byte-identical module`, async () => {
      const ref = `${reg.host}/team/round-${variant}:v1`;
      const { home, wasm } = await homeWithImage(ref, variant);
      const before = await inspect(home, ref);
      const push = await runCli(['push', ref, '--json'], { home });
      assert.equal(push.code, 0, push.stderr);
      const pushed = json<PushJson>(push.stdout);
      assert.equal(pushed.manifestDigest, before.manifestDigest);
      assert.ok(pushed.bytesTransferred > wasm.length / 2, 'the blobs were uploaded');

      assert.equal((await runCli(['rm', ref], { home })).code, 0);
      const pull = await runCli(['pull', ref], { home });
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(pull.stdout, new RegExp(`Pulled ${ref.replace(/[.]/g, '\\.')} \\(${before.manifestDigest}\\)`));
      const after = await inspect(home, ref);
      assert.deepEqual(after, { ...after, manifestDigest: before.manifestDigest, wasmDigest: sha256Digest(wasm), variant });
      const wat = await runCli(['wat', ref], { home });
      assert.match(wat.stdout, /proxy_abi_version_0_2_1/);

      // The independent client sees the image with the media types of its variant.
      if (await requireTool('skopeo')) {
        const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
        const manifest = JSON.parse(stdout);
        assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
        if (variant === 'oci') {
          assert.equal(manifest.config.mediaType, 'application/vnd.module.wasm.config.v1+json');
          assert.deepEqual(
            manifest.layers.map((l: { mediaType: string }) => l.mediaType),
            ['application/vnd.module.wasm.config.v1+json', 'application/vnd.module.wasm.content.layer.v1+wasm'],
          );
        } else {
          assert.equal(manifest.layers.at(-1).mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
        }
        assert.equal(sha256Digest(Buffer.from(stdout)), before.manifestDigest, 'skopeo reads the very manifest bytes we pushed');
      }
    });
  }

  it('a second push of the same image uploads no blob bytes', async () => {
    const ref = `${reg.host}/team/twice:v1`;
    const { home } = await homeWithImage(ref);
    assert.equal((await runCli(['push', ref], { home })).code, 0);
    const again = await runCli(['push', ref, '--json'], { home });
    assert.equal(again.code, 0, again.stderr);
    const result = json<PushJson>(again.stdout);
    assert.equal(result.bytesTransferred, 0);
    assert.ok(result.blobs.every((b) => b.state === 'exists'), JSON.stringify(result.blobs));
  });

  it('mounts blobs from another repository of the same registry instead of uploading them', async () => {
    const first = `${reg.host}/team/mount-source:v1`;
    const second = `${reg.host}/other/mount-target:v1`;
    const { home } = await homeWithImage(first);
    assert.equal((await runCli(['push', first], { home })).code, 0);
    assert.equal((await runCli(['tag', first, second], { home })).code, 0);
    const push = await runCli(['push', second, '--json'], { home });
    assert.equal(push.code, 0, push.stderr);
    const result = json<PushJson>(push.stdout);
    assert.equal(result.bytesTransferred, 0);
    assert.ok(result.blobs.every((b) => b.state === 'mounted'), JSON.stringify(result.blobs));
  });

  it('lists a catalog of more than 100 repositories completely, page by page, and searches it', async () => {
    const client = new RegistryClient(reg.host);
    const config = Buffer.from('{}');
    const layer = Buffer.from('catalog layer');
    await client.pushBlob('catalog/repo-000', config);
    await client.pushBlob('catalog/repo-000', layer);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length }],
      }),
    );
    const names = Array.from({ length: 105 }, (_, i) => `catalog/repo-${String(i).padStart(3, '0')}`);
    for (const name of names) {
      await client.pushBlob(name, config, { mountFrom: ['catalog/repo-000'] });
      await client.pushBlob(name, layer, { mountFrom: ['catalog/repo-000'] });
      await client.putManifest(name, 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
    }
    const all = await client.catalog({ pageSize: 20 });
    for (const name of names) assert.ok(all.includes(name), `${name} is listed`);
    assert.equal(new Set(all).size, all.length, 'no repository twice');
    const page = await client.catalogPage({ pageSize: 20 });
    assert.equal(page.repositories.length, 20);
    assert.ok(page.next, 'a first page says where the next starts');

    const home = tempDir();
    const listed = await runCli(['list', '--published', '-s', reg.host, '--search', 'repo-10', '--json'], { home });
    assert.equal(listed.code, 0, listed.stderr);
    const rows = json<{ repository: string; tag: string }[]>(listed.stdout);
    assert.deepEqual(rows.map((r) => `${r.repository}:${r.tag}`), ['catalog/repo-100:v1', 'catalog/repo-101:v1', 'catalog/repo-102:v1', 'catalog/repo-103:v1', 'catalog/repo-104:v1']);
  });

  it('list --published shows NAME TAG SIZE SHA UPDATED with the wasm layer digest', async () => {
    const ref = `${reg.host}/published/shown:v2`;
    const { home, wasm } = await homeWithImage(ref);
    assert.equal((await runCli(['push', ref], { home })).code, 0);
    const listed = await runCli(['list', '--search', 'published/shown', '-s', reg.host], { home });
    assert.equal(listed.code, 0, listed.stderr);
    const [header, row] = listed.stdout.trim().split('\n');
    assert.match(header!, /^NAME\s+TAG\s+SIZE\s+SHA\s+UPDATED$/);
    assert.match(row!, new RegExp(`^${reg.host}/published/shown\\s+v2\\s+\\d+ B\\s+${sha256Digest(wasm).slice(7, 15)}\\s`));
  });

  it('skopeo copies from our store to the registry, and we pull what skopeo pushed', async (t) => {
    if (!(await requireTool('skopeo'))) return t.skip('skopeo is not installed');
    const ref = `${reg.host}/skopeo/source:v1`;
    const { home, wasm } = await homeWithImage(ref, 'compat');
    const target = `${reg.host}/skopeo/copied:v1`;
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${path.join(home, 'store')}:${ref}`, `docker://${target}`]);
    const pull = await runCli(['pull', target], { home });
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal((await inspect(home, target)).wasmDigest, sha256Digest(wasm));
  });

  it('copy moves an image between registries without the local store', async () => {
    const other = await startRegistry();
    try {
      const ref = `${reg.host}/copy/source:v1`;
      const { home } = await homeWithImage(ref);
      assert.equal((await runCli(['push', ref], { home })).code, 0);
      const target = `${other.host}/copy/target:v3`;
      const copy = await runCli(['copy', ref, target], { home });
      assert.equal(copy.code, 0, copy.stderr);
      const pulled = await runCli(['pull', target], { home: tempDir() });
      assert.equal(pulled.code, 0, pulled.stderr);
    } finally {
      await other.stop();
    }
  });

  it('deletes a manifest where the registry allows it', async () => {
    const ref = `${reg.host}/delete/me:v1`;
    const { home } = await homeWithImage(ref);
    const pushed = json<PushJson>((await runCli(['push', ref, '--json'], { home })).stdout);
    const client = new RegistryClient(reg.host);
    await client.deleteManifest('delete/me', pushed.manifestDigest as `sha256:${string}`);
    assert.equal(await client.headManifest('delete/me', 'v1'), undefined);
  });

  it('explains what to do when the image to push is not in the store', async () => {
    const home = tempDir();
    const r = await runCli(['push', `${reg.host}/team/never-built:v1`], { home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not in the local store[\s\S]*wasm-filter build -t[\s\S]*wasm-filter tag/);
  });

  it('names the registry, repository, operation and status when a repository does not exist', async () => {
    const home = tempDir();
    const r = await runCli(['pull', `${reg.host}/nobody/nothing:v1`], { home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`pulling manifest v1 at ${reg.host}/nobody/nothing failed: HTTP 404`));
    assert.match(r.stderr, /→ /);
  });

  it('refuses to pull what is not a wasm filter image, and leaves the store as it was', async () => {
    const client = new RegistryClient(reg.host);
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const layer = Buffer.from('not a tarball');
    await client.pushBlob('plain/container', config);
    await client.pushBlob('plain/container', layer);
    await client.putManifest(
      'plain/container',
      'v1',
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256Digest(layer), size: layer.length }],
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json',
    );
    const { home } = await homeWithImage(`${reg.host}/kept/image:v1`);
    const snapshot = await snapshotTree(path.join(home, 'store'));
    const r = await runCli(['pull', `${reg.host}/plain/container:v1`], { home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not a wasm filter image: its last layer is not a tar\+gzip archive/);
    assert.deepEqual(await snapshotTree(path.join(home, 'store')), snapshot);
  });
});

describe('registry: Basic auth (htpasswd)', () => {
  let reg: StartedRegistry;
  before(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
  });
  after(async () => reg?.stop());

  it('login checks the password, keeps it out of every output and in a 0600 file; push then works', async () => {
    const ref = `${reg.host}/alice/filter:v1`;
    const { home } = await homeWithImage(ref);
    const anonymous = await runCli(['push', ref], { home });
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, new RegExp(`${reg.host}/alice/filter needs you to log in[\\s\\S]*wasm-filter login ${reg.host}`));

    const wrong = await runCli(['login', reg.host, '-u', 'alice', '--password-stdin'], { home, input: 'not-her-password\n' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /rejected the credentials/);
    assert.doesNotMatch(wrong.stdout + wrong.stderr, /not-her-password/);
    await assert.rejects(fs.stat(path.join(home, 'auth.json')), 'a refused login is not saved');

    const ok = await runCli(['login', reg.host, '-u', 'alice', '--password-stdin'], { home, input: `${USERS.alice}\n` });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`Logged in to ${reg.host} as alice`));
    assert.doesNotMatch(ok.stdout + ok.stderr, new RegExp(USERS.alice!));
    const stat = await fs.stat(path.join(home, 'auth.json'));
    assert.equal(stat.mode & 0o777, 0o600);

    const push = await runCli(['push', ref], { home });
    assert.equal(push.code, 0, push.stderr);

    assert.equal((await runCli(['logout', reg.host], { home })).code, 0);
    assert.equal((await runCli(['pull', ref], { home })).code, 1, 'after logout the registry asks again');
  });

  it("uses Docker's config.json: auths entries and credential helpers", async () => {
    const ref = `${reg.host}/bob/filter:v1`;
    const { home } = await homeWithImage(ref);
    const dockerDir = path.join(home, 'docker');
    await fs.mkdir(dockerDir);
    await fs.writeFile(path.join(dockerDir, 'config.json'), JSON.stringify({ auths: { [`https://${reg.host}`]: { auth: Buffer.from(`bob:${USERS.bob}`).toString('base64') } } }));
    const push = await runCli(['push', ref], { home, env: { DOCKER_CONFIG: dockerDir } });
    assert.equal(push.code, 0, push.stderr);

    // A credential helper, spoken to over its stdin/stdout protocol.
    const bin = path.join(home, 'bin');
    await fs.mkdir(bin);
    const helper = path.join(bin, 'docker-credential-wfstest');
    await fs.writeFile(helper, `#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = "${reg.host}" ] && printf '{"ServerURL":"%s","Username":"bob","Secret":"${USERS.bob}"}' "$server" && exit 0\necho "credentials not found in native keychain"; exit 1\n`, { mode: 0o755 });
    await fs.writeFile(path.join(dockerDir, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'wfstest' } }));
    const pull = await runCli(['pull', ref], { home: tempDir(), env: { DOCKER_CONFIG: dockerDir, PATH: `${bin}:${process.env.PATH}` } });
    assert.equal(pull.code, 0, pull.stderr);
  });
});

describe('registry: TLS with a self-signed certificate', () => {
  let reg: StartedRegistry;
  before(async () => {
    reg = await startRegistry({ tls: true });
  });
  after(async () => reg?.stop());

  it('says to use --insecure, and works with it; --plain-http against TLS is explained too', async () => {
    const ref = `${reg.host}/tls/filter:v1`;
    const { home } = await homeWithImage(ref);
    const store = await LocalStore.open(path.join(home, 'store'));
    await assert.rejects(pushImage(store, ref, { clients: clientFactory({ plainHttp: false }) }), (err: RegistryError) => {
      assert.equal(err.code, 'E_REGISTRY_UNREACHABLE');
      assert.match(err.message, /TLS certificate of 127\.0\.0\.1:\d+ is not trusted/);
      assert.match(err.hint ?? '', /--insecure/);
      return true;
    });
    const pushed = await pushImage(store, ref, { clients: clientFactory({ plainHttp: false, insecure: true }) });
    assert.match(pushed.manifestDigest, /^sha256:/);
    // Loopback hosts default to plain HTTP: the TLS registry's refusal is explained, and --insecure means TLS.
    const puller = tempDir();
    const plain = await runCli(['pull', ref], { home: puller });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /HTTP 400[\s\S]*speaks HTTPS on this port[\s\S]*--insecure/);
    const insecure = await runCli(['pull', ref, '--insecure'], { home: puller });
    assert.equal(insecure.code, 0, insecure.stderr);
  });
});

describe('registry: token auth', () => {
  let reg: StartedRegistry;
  before(async () => {
    reg = await startRegistry({ auth: 'token' });
  });
  after(async () => reg?.stop());

  it('gets Bearer tokens from the realm with the credentials, caches them, and pulls back', async () => {
    const ref = `${reg.host}/alice/token-filter:v1`;
    const { home, wasm } = await homeWithImage(ref);
    const login = await runCli(['login', reg.host, '-u', 'alice', '--password-stdin'], { home, input: USERS.alice });
    assert.equal(login.code, 0, login.stderr);
    const issued = reg.issuer!.requests.length;
    const push = await runCli(['push', ref], { home });
    assert.equal(push.code, 0, push.stderr);
    // One push scope, not one token per request.
    assert.ok(reg.issuer!.requests.length - issued <= 2, `tokens fetched: ${reg.issuer!.requests.length - issued}`);
    assert.ok(reg.issuer!.requests.slice(issued).every((r) => r.user === 'alice'));
    assert.equal((await runCli(['rm', ref], { home })).code, 0);
    assert.equal((await runCli(['pull', ref], { home })).code, 0);
    assert.equal((await inspect(home, ref)).wasmDigest, sha256Digest(wasm));
  });

  it('fetches a new token when the registry refuses an expired one', async () => {
    const store = await LocalStore.open(path.join(tempDir(), 'store'));
    const ref = `${reg.host}/alice/expiring:v1`;
    const { home } = await homeWithImage(ref);
    const source = await LocalStore.open(path.join(home, 'store'));
    const clients = clientFactory({ credential: { username: 'alice', secret: USERS.alice! } });
    await pushImage(source, ref, { clients });
    reg.issuer!.expiredTokensToIssue = 1;
    const before = reg.issuer!.requests.length;
    const pulled = await pullImage(store, ref, { clients: clientFactory({ credential: { username: 'alice', secret: USERS.alice! } }) });
    assert.equal(pulled.image.refName, ref);
    assert.ok(reg.issuer!.requests.length - before >= 2, 'a second token was fetched after the expired one');
  });

  it('an anonymous pull is told to log in; a wrong password is told it was rejected', async () => {
    const client = new RegistryClient(reg.host);
    await assert.rejects(client.getManifest('alice/token-filter', 'v1'), (err: RegistryError) => {
      assert.equal(err.code, 'E_LOGIN_REQUIRED');
      assert.match(err.message, /needs you to log in/);
      return true;
    });
    const wrong = new RegistryClient(reg.host, { credentials: new StaticCredentials({ username: 'alice', secret: 'guess' }) });
    await assert.rejects(wrong.getManifest('alice/token-filter', 'v1'), (err: RegistryError) => {
      assert.equal(err.code, 'E_CREDENTIALS_REJECTED');
      assert.doesNotMatch(`${err.message} ${err.hint}`, /guess/);
      return true;
    });
  });
});

describe('registry: faults', () => {
  let reg: StartedRegistry;
  let proxy: FaultyProxy;
  before(async () => {
    reg = await startRegistry();
    proxy = await new FaultyProxy(reg.host).start();
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('retries a 500 and succeeds', async () => {
    const ref = `${proxy.host}/faults/retry:v1`;
    const { home } = await homeWithImage(ref);
    proxy.add({ method: 'PUT', path: /\/manifests\//, times: 1, kind: { status: 500 } });
    proxy.add({ method: 'HEAD', path: /\/blobs\//, times: 1, kind: { status: 503 } });
    const push = await runCli(['push', ref], { home });
    assert.equal(push.code, 0, push.stderr);
    assert.ok(proxy.events.some((e) => e.startsWith('500 PUT')) && proxy.events.some((e) => e.startsWith('503 HEAD')), proxy.events.join('\n'));
  });

  it('says the registry kept failing when 500s do not stop', async () => {
    const ref = `${proxy.host}/faults/down:v1`;
    const { home } = await homeWithImage(ref);
    proxy.add({ path: /\/v2\/faults\/down\//, times: 100, kind: { status: 500 } });
    const push = await runCli(['push', ref], { home });
    proxy.faults.length = 0;
    assert.equal(push.code, 1);
    assert.match(push.stderr, new RegExp(`at ${proxy.host}/faults/down failed: HTTP 500[\\s\\S]*kept failing after retries`));
  });

  it('resumes a chunked upload after the connection is cut mid-chunk', async () => {
    const blob = Buffer.alloc(300 * 1024);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 31 + 7) & 0xff;
    proxy.add({ method: 'PATCH', path: /\/blobs\/uploads\//, times: 1, kind: { cutUploadAfterBytes: 40 * 1024 } });
    const client = new RegistryClient(proxy.host, { chunkThreshold: 64 * 1024, chunkSize: 100 * 1024, backoffMs: 10 });
    assert.equal(await client.pushBlob('faults/chunked', blob), 'uploaded');
    assert.ok(proxy.events.some((e) => e.startsWith('cut PATCH')), proxy.events.join('\n'));
    const sessions = proxy.requests.filter((r) => r.startsWith('POST /v2/faults/chunked/blobs/uploads/'));
    const statusChecks = proxy.requests.filter((r) => r.startsWith('GET /v2/faults/chunked/blobs/uploads/'));
    assert.equal(sessions.length, 1, 'the same upload session went on after the cut');
    assert.equal(statusChecks.length, 1, 'the client asked the registry how much it had');
    const direct = new RegistryClient(reg.host);
    const back = await direct.fetchBlob('faults/chunked', sha256Digest(blob), blob.length);
    assert.ok(back.equals(blob), 'the registry holds exactly the blob');
  });

  it('restarts a monolithic upload cut in the middle', async () => {
    const ref = `${proxy.host}/faults/cut:v1`;
    const { home } = await homeWithImage(ref);
    proxy.add({ method: 'PUT', path: /\/blobs\/uploads\//, times: 1, kind: { cutUploadAfterBytes: 10 } });
    const push = await runCli(['push', ref], { home });
    assert.equal(push.code, 0, push.stderr);
    assert.ok(proxy.events.some((e) => e.startsWith('cut PUT')), proxy.events.join('\n'));
    assert.equal((await runCli(['pull', `${reg.host}/faults/cut:v1`], { home: tempDir() })).code, 0, 'what arrived is complete and correct');
  });

  it('refuses a blob whose digest does not match, and writes nothing to the store', async () => {
    const ref = `${reg.host}/faults/corrupt:v1`;
    const { home } = await homeWithImage(ref);
    assert.equal((await runCli(['push', ref], { home })).code, 0);
    const puller = tempDir();
    await runCli(['list'], { home: puller }); // creates the empty store
    const snapshot = await snapshotTree(path.join(puller, 'store'));
    proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, times: 10, kind: { corruptBody: true } });
    const pull = await runCli(['pull', `${proxy.host}/faults/corrupt:v1`], { home: puller });
    proxy.faults.length = 0;
    assert.equal(pull.code, 1);
    assert.match(pull.stderr, /the content has digest sha256:[0-9a-f]{64}\. Nothing was written to the store/);
    assert.deepEqual(await snapshotTree(path.join(puller, 'store')), snapshot);
  });

  it('says how to reach a registry that does not answer', async () => {
    const home = tempDir();
    const r = await runCli(['pull', '127.0.0.1:9/some/filter:v1'], { home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nothing is listening at http:\/\/127\.0\.0\.1:9[\s\S]*→ Check that the registry runs/);
  });
});
