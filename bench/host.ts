// Requests per second and p50/p99 latency through the local proxy with the add-header filter (the modern
// template, built for real) against the same proxy with no filter, in one run on loopback, with keep-alive
// connections and with a new connection per request; and the memory one VM costs. The load generator
// (autocannon) runs in a process of its own.
// Usage: npm run bench:host [-- --seconds N]
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProject } from '../src/core/build/build';
import { FilterRuntime } from '../src/core/host/filterRuntime';
import { startEchoUpstream, startProxy } from '../src/core/host/proxyServer';
import { ProxyWasmVm } from '../src/core/host/vm';
import { scaffoldProject } from '../src/core/scaffold/scaffold';
import { LocalStore } from '../src/core/store/localStore';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 10;
const CONNECTIONS = 32;

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** autocannon in its own process, so the load generator does not share the proxy's event loop. */
async function load(url: string, keepAlive: boolean): Promise<Load> {
  const args = [require.resolve('autocannon/autocannon.js'), '--json', '-c', String(CONNECTIONS), '-d', String(SECONDS), ...(keepAlive ? [] : ['-H', 'connection=close']), `${url}/bench`];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((resolve) => child.on('exit', resolve));
  const result = JSON.parse(out) as { requests: { average: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number };
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

async function main() {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wfs-bench-host-'));
  const dir = path.join(root, 'add-header');
  await scaffoldProject({ dir, language: 'assemblyscript', sdk: 'modern', platform: 'istio', platformVersion: '1.28.x', rootId: 'add_header', name: 'add-header', install: true });
  const store = await LocalStore.open(path.join(root, 'store'));
  const built = await buildProject(dir, { store, tag: 'add-header:bench' });
  const wasm = await fs.readFile(built.outputFile ?? path.join(dir, 'build', 'filter.wasm'));

  const echo = await startEchoUpstream();
  const plain = await startProxy(undefined, { port: 0, upstream: echo.url });
  const runtime = await FilterRuntime.start(wasm, { rootId: 'add_header', logLevel: 'warn' });
  const filtered = await startProxy(runtime, { port: 0, upstream: echo.url });
  const inProcess = await startProxy(await FilterRuntime.start(wasm, { rootId: 'add_header', logLevel: 'warn', isolation: 'none' }), { port: 0, upstream: echo.url });
  for (const p of [filtered, inProcess]) {
    const check = await fetch(`${p.url}/`);
    if (check.headers.get('hello') !== 'world!') throw new Error('the filter is not running');
  }

  const lines: string[] = [];
  const log = (l: string) => {
    lines.push(l);
    console.log(l);
  };
  log(`# ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()} · ${CONNECTIONS} connections, ${SECONDS} s each`);
  log('| connections | isolation | proxy, no filter | proxy + add-header | throughput kept | p50 / p99 no filter | p50 / p99 filter |  (medians of 3 alternated runs)');
  log('|---|---|---|---|---|---|---|');
  for (const keepAlive of [true, false]) {
    for (const [isolation, proxy] of [
      ['worker (default)', filtered],
      ['none', inProcess],
    ] as const) {
      // Warm both, then alternate baseline and filter three times and take the medians: on a small shared
      // machine the load generator, the proxy and the upstream compete for the same cores, so single runs drift.
      await load(plain.url, keepAlive);
      await load(proxy.url, keepAlive);
      const bases: Load[] = [];
      const filters: Load[] = [];
      for (let round = 0; round < 3; round++) {
        bases.push(await load(plain.url, keepAlive));
        filters.push(await load(proxy.url, keepAlive));
      }
      const mid = (xs: Load[]) => [...xs].sort((x, y) => x.rps - y.rps)[1]!;
      const a = mid(bases);
      const f = mid(filters);
      const base = a.rps;
      if (a.errors + f.errors) log(`(errors: baseline ${a.errors}, filter ${f.errors})`);
      log(
        `| ${keepAlive ? 'keep-alive' : 'new per request'} | ${isolation} | ${base.toFixed(0)} req/s | ${f.rps.toFixed(0)} req/s | **${((f.rps / base) * 100).toFixed(1)}%** (cost ${((1 - f.rps / base) * 100).toFixed(1)}%) | ${a.p50} / ${a.p99} ms | ${f.p50} / ${f.p99} ms |`,
      );
    }
  }

  // Memory of one VM: many instances of the module in this process, divided; and of one isolated VM
  // (its worker thread: a V8 isolate of its own).
  const module = ProxyWasmVm.compile(wasm);
  global.gc?.();
  const before = process.memoryUsage().rss;
  const vms: ProxyWasmVm[] = [];
  for (let i = 0; i < 1000; i++) {
    const vm = ProxyWasmVm.create(module, { rootId: 'add_header' });
    vm.start();
    const s = vm.createStream({ path: '/' });
    vm.onRequestHeaders(s, [[':path', '/']], true);
    vm.onResponseHeaders(s, [[':status', '200']], true);
    vm.finishStream(s);
    vms.push(vm);
  }
  global.gc?.();
  const perVm = (process.memoryUsage().rss - before) / vms.length;
  const beforeWorkers = process.memoryUsage().rss;
  const workers: FilterRuntime[] = [];
  for (let i = 0; i < 10; i++) workers.push(await FilterRuntime.start(wasm, { rootId: 'add_header' }));
  const perWorker = (process.memoryUsage().rss - beforeWorkers) / workers.length;
  for (const w of workers) await w.stop();
  log(
    `\nMemory per VM (${(wasm.length / 1000).toFixed(1)} kB module, linear memory ${(vms[0]!.memoryBytes() / 1024).toFixed(0)} KiB): ${(perVm / 1024).toFixed(0)} KiB RSS in-process (1,000 VMs); ${(perWorker / 1024 / 1024).toFixed(1)} MiB RSS with its worker thread (10 VMs)`,
  );

  await filtered.close();
  await inProcess.close();
  await plain.close();
  await echo.close();
  await fs.rm(root, { recursive: true, force: true });
  return lines;
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

