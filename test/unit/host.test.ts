import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { deserializePairs, serializePairs } from '../../src/core/host/abi';
import { FilterRuntime } from '../../src/core/host/filterRuntime';
import { formatTap, parseFilterTests, runFilterTest } from '../../src/core/host/filterTests';
import { capModuleMemory } from '../../src/core/host/memoryLimit';
import { startEchoUpstream, startProxy, type RunningProxy } from '../../src/core/host/proxyServer';
import { ProxyWasmVm, type FilterLog } from '../../src/core/host/vm';
import { featuresModule, hostileModule, localReplyModule, mapsModule } from '../helpers/hostModules';
import { filterWat, wat } from '../helpers/wasm';

async function vmOf(text: string, options: Parameters<typeof ProxyWasmVm.create>[1] = {}): Promise<{ vm: ProxyWasmVm; logs: FilterLog[] }> {
  const logs: FilterLog[] = [];
  const vm = ProxyWasmVm.create(ProxyWasmVm.compile(await wat(text)), { onLog: (l) => logs.push(l), ...options });
  assert.equal(vm.start(), true, 'the filter starts');
  return { vm, logs };
}

describe('proxy-wasm host: encodings', () => {
  it('serializes header pairs as the ABI lays them out, and back', () => {
    const pairs: [string, string][] = [
      [':status', '200'],
      ['hello', 'wörld'],
      ['empty', ''],
    ];
    const bytes = serializePairs(pairs);
    assert.equal(bytes.readUInt32LE(0), 3);
    assert.equal(bytes.readUInt32LE(4), 7, 'first key length');
    assert.equal(bytes.readUInt32LE(8), 3, 'first value length');
    assert.equal(bytes[4 + 3 * 8 + 7], 0, 'keys end with NUL');
    assert.deepEqual(deserializePairs(bytes), pairs);
    assert.throws(() => deserializePairs(bytes.subarray(0, 10)));
  });

  it("caps a module's own memory maximum", async () => {
    const capped = capModuleMemory(await wat('(module (memory (export "memory") 1))'), 4);
    const memory = new WebAssembly.Instance(new WebAssembly.Module(capped)).exports.memory as WebAssembly.Memory;
    assert.equal(memory.grow(3), 1);
    assert.throws(() => memory.grow(1), RangeError);
  });
});

describe('proxy-wasm host: a VM', () => {
  it('refuses a module without an ABI version, as Envoy does', async () => {
    assert.throws(() => ProxyWasmVm.create(ProxyWasmVm.compile(Buffer.from('')), {}), /./);
    const module = ProxyWasmVm.compile(await wat(filterWat({ abi: '' })));
    assert.throws(() => ProxyWasmVm.create(module), /Missing or unknown Proxy-Wasm ABI version/);
  });

  it('changes every header and trailer map type, and buffers bodies while the filter pauses', async () => {
    const { vm, logs } = await vmOf(mapsModule());
    const s = vm.createStream({ method: 'POST', path: '/x' });
    assert.equal(vm.onRequestHeaders(s, [[':path', '/x']], false), 0);
    assert.deepEqual(s.requestHeaders, [
      [':path', '/x'],
      ['x-added', 'yes'],
    ]);
    assert.equal(vm.onRequestBody(s, Buffer.from('ab'), false), 1, 'paused until the end of the body');
    assert.equal(vm.onRequestBody(s, Buffer.from('cd'), true), 0);
    assert.equal(s.requestBody.toString(), 'yesabcd', 'the filter saw the whole body and prepended to it');
    vm.onRequestTrailers(s, [['grpc', '1']]);
    assert.deepEqual(s.requestTrailers, [
      ['grpc', '1'],
      ['x-trailer', 't'],
    ]);
    vm.onResponseHeaders(s, [
      [':status', '200'],
      ['Server', 'nginx'],
      ['hello', 'x'],
    ], false);
    assert.deepEqual(s.responseHeaders, [
      [':status', '200'],
      ['hello', 'world'],
    ], 'replaced (case-insensitively) and removed');
    assert.equal(vm.onResponseBody(s, Buffer.from('zzz'), true), 0);
    assert.equal(s.responseBody.toString(), 'world');
    vm.onResponseTrailers(s, []);
    assert.deepEqual(s.responseTrailers, [['x-trailer', 't']]);
    vm.finishStream(s);
    assert.deepEqual(logs.map((l) => `${l.level} ${l.message}`), ['info world'], 'on_log ran at the end');
  });

  for (const abi of ['0.1.0', '0.2.0'] as const) {
    it(`ABI ${abi}: reads the configuration its way and sends a local reply`, async () => {
      const { vm } = await vmOf(localReplyModule(abi), { pluginConfiguration: 'teapot' });
      assert.equal(vm.abi, abi);
      const s = vm.createStream();
      assert.equal(vm.onRequestHeaders(s, [], true), 1);
      assert.equal(s.localResponse?.status, 418);
      assert.equal(s.localResponse?.body.toString(), 'teapot');
    });
  }

  it('serves properties, metrics, shared data with CAS, queues, WASI output and HTTP callouts', async () => {
    const { vm, logs } = await vmOf(featuresModule());
    const s = vm.createStream({ method: 'GET', path: '/some/path?q=1' });
    assert.equal(vm.onRequestHeaders(s, [[':path', '/some/path?q=1']], true), 1, 'paused for the callout');
    const header = (name: string) => s.requestHeaders.find(([k]) => k === name)?.[1];
    assert.equal(header('x-path'), '/some/path?q=1');
    assert.equal(header('x-shared'), 'v1');
    assert.equal(header('x-cas'), 'mismatch', 'a stale CAS is refused');
    assert.equal(header('x-queue'), 'item');
    assert.deepEqual(vm.metricsSnapshot(), [{ name: 'requests', type: 0, value: 5n }]);
    assert.ok(logs.some((l) => l.level === 'info' && l.message === 'from wasi'));
    const [call] = vm.pendingCalls.splice(0);
    assert.equal(call?.upstream, 'auth');
    assert.deepEqual(call?.headers, [
      [':method', 'GET'],
      [':path', '/check'],
      [':authority', 'auth'],
    ]);
    vm.onHttpCallResponse(call!, { headers: [[':status', '200']], body: Buffer.from('granted'), trailers: [] });
    assert.equal(header('x-auth'), 'granted');
    assert.equal(header('x-auth-status'), '200');
    assert.equal(s.continued.request, true, 'the filter continued the request');
  });

  it('answers a bad pointer with INVALID_MEMORY_ACCESS and lives on', async () => {
    const { vm, logs } = await vmOf(hostileModule());
    const s = vm.createStream();
    vm.onRequestHeaders(s, [[':path', '/o']], true);
    assert.ok(logs.some((l) => l.level === 'error' && /outside the \d+-byte memory/.test(l.message)), JSON.stringify(logs));
    assert.deepEqual(s.requestHeaders.at(-1), ['x-added', 'yes'], 'the filter went on after the failed call');
  });
});

describe('proxy-wasm host: hostile filters behind the proxy', () => {
  let echo: { url: string; close(): Promise<void> };
  let proxy: RunningProxy;
  let open: RunningProxy;
  const logs: FilterLog[] = [];
  before(async () => {
    echo = await startEchoUpstream();
    const wasm = await wat(hostileModule());
    const options = { maxMemoryPages: 64, callbackTimeoutMs: 300, onLog: (l: FilterLog) => logs.push(l) };
    proxy = await startProxy(await FilterRuntime.start(wasm, options), { port: 0, upstream: echo.url });
    open = await startProxy(await FilterRuntime.start(wasm, options), { port: 0, upstream: echo.url, failStrategy: 'open' });
  });
  after(async () => {
    await proxy?.close();
    await open?.close();
    await echo?.close();
  });

  async function get(base: string, path: string): Promise<{ status: number; body: string; headers: Headers }> {
    const r = await fetch(base + path);
    return { status: r.status, body: await r.text(), headers: r.headers };
  }

  async function servesNormally(): Promise<void> {
    const ok = await get(proxy.url, '/ok');
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body).headers['x-added'], 'yes', 'the filter ran on the request');
  }

  it('a trap fails that request closed with the callback named, and the next request is served', async () => {
    const r = await get(proxy.url, '/t');
    assert.equal(r.status, 500);
    assert.match(r.body, /failed in proxy_on_request_headers/);
    assert.equal(r.headers.get('x-wasm-filter-error'), 'proxy_on_request_headers');
    await servesNormally();
  });

  it('an endless loop is stopped at the time limit', async () => {
    const started = Date.now();
    const r = await get(proxy.url, '/l');
    assert.equal(r.status, 500);
    assert.match(r.body, /ran longer than 300 ms in proxy_on_request_headers/);
    assert.ok(Date.now() - started < 5000);
    await servesNormally();
  });

  it('memory growth stops at the limit', async () => {
    const r = await get(proxy.url, '/g');
    assert.equal(r.status, 200);
    assert.ok(logs.some((l) => l.message === 'grow refused'));
    await servesNormally();
  });

  it('huge lengths and proc_exit are contained', async () => {
    assert.equal((await get(proxy.url, '/h')).status, 200, 'a huge length fails the host call only');
    const exit = await get(proxy.url, '/e');
    assert.equal(exit.status, 500);
    assert.match(exit.body, /proc_exit 3/);
    await servesNormally();
  });

  it('fail open passes the request through unfiltered', async () => {
    const r = await get(open.url, '/t');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).headers['x-added'], undefined);
  });

  it('serves concurrent requests on keep-alive connections', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const one = () =>
      new Promise<number>((resolve, reject) => {
        const port = Number(new URL(proxy.url).port);
        http.get({ host: '127.0.0.1', port, path: '/ok', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        }).on('error', reject);
      });
    const statuses = await Promise.all(Array.from({ length: 40 }, one));
    agent.destroy();
    assert.ok(statuses.every((s) => s === 200));
  });
});

describe('proxy-wasm host: the proxy', () => {
  it('resumes a paused request when the HTTP callout to a named upstream answers', async () => {
    const echo = await startEchoUpstream();
    const auth = http.createServer((req, res) => res.end(req.url === '/check' ? 'granted' : 'wrong path'));
    await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
    const authUrl = `http://127.0.0.1:${(auth.address() as { port: number }).port}`;
    const proxy = await startProxy(await FilterRuntime.start(await wat(featuresModule())), { port: 0, upstream: echo.url, clusters: { auth: authUrl } });
    try {
      const r = await fetch(`${proxy.url}/orders?id=7`);
      assert.equal(r.status, 200);
      const seen = JSON.parse(await r.text()).headers;
      assert.equal(seen['x-auth'], 'granted', 'the callout went to the auth upstream and its body reached the filter');
      assert.equal(seen['x-auth-status'], '200');
      assert.equal(seen['x-path'], '/orders?id=7');
    } finally {
      await proxy.close();
      await echo.close();
      await new Promise<void>((r) => auth.close(() => r()));
    }
  });

  it('streams a large request body through to the upstream and back', async () => {
    const echo = await startEchoUpstream();
    const proxy = await startProxy(await FilterRuntime.start(await wat(hostileModule())), { port: 0, upstream: echo.url });
    try {
      const body = 'x'.repeat(3 * 1024 * 1024);
      const r = await fetch(`${proxy.url}/ok`, { method: 'POST', body });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(await r.text()).body.length, body.length);
    } finally {
      await proxy.close();
      await echo.close();
    }
  });
});

describe('filter tests (declarative)', () => {
  it('reads cases with their lines, and refuses what it does not understand', () => {
    const text = 'tests:\n  - name: first\n    expect: { status: 200 }\n\n  - name: second\n    config: x\n    expect:\n      localReply: true\n';
    assert.deepEqual(parseFilterTests(text).map((t) => [t.name, t.line]), [
      ['first', 2],
      ['second', 5],
    ]);
    assert.throws(() => parseFilterTests('tests:\n  - name: a\n    expct: {}\n'), /unknown key "expct"/);
    assert.throws(() => parseFilterTests('tests:\n  - name: a\n'), /says nothing it expects/);
    assert.throws(() => parseFilterTests('nothing: here\n'), /no "tests:" list/);
    assert.throws(() => parseFilterTests('tests: [\n'), /not valid YAML/);
  });

  it('runs a case against a module: local replies, headers, and failures that say what differed', async () => {
    const module = ProxyWasmVm.compile(await wat(localReplyModule('0.2.0')));
    const [ok, wrong] = parseFilterTests(
      'tests:\n  - name: replies with the config\n    config: teapot\n    expect: { status: 418, body: teapot, localReply: true }\n  - name: wrong\n    config: teapot\n    expect: { status: 200, localReply: false }\n',
    );
    assert.deepEqual(runFilterTest(module, ok!).failures, []);
    const failed = runFilterTest(module, wrong!);
    assert.deepEqual(failed.failures, ['status is 418, expected 200', 'the filter sent a local reply']);
    assert.match(formatTap([failed]), /not ok 1 - wrong\n  ---\n  line: 5\n/);
  });
});
