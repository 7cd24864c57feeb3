// Push and pull against the loopback registry (Debian's docker-registry), each side by side with `skopeo copy`
// of the same image in the same run, as ratios (goal ≤ 1×); and the bytes a second push uploads (goal 0).
// Both sides are one process each, as a user runs them. Usage: npm run bench:registry [-- --runs N]
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { clientFactory } from '../src/core/registry/access';
import { pushImage } from '../src/core/registry/transfer';
import { LocalStore } from '../src/core/store/localStore';
import { startRegistry } from '../test/helpers/registry';

const REPO = path.resolve(__dirname, '..', '..');
const CLI = path.join(REPO, 'dist', 'cli.js');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function timed(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): { ms: number; stdout: string } {
  const started = process.hrtime.bigint();
  const r = spawnSync(command, args, { env, stdio: 'pipe', encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${r.stderr}`);
  return { ms, stdout: r.stdout };
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

function section(id: number, body: number[] | Buffer): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([Buffer.from([id, ...leb(b.length)]), b]);
}

function name(text: string): number[] {
  return [...leb(text.length), ...Buffer.from(text)];
}

/** A valid proxy-wasm-shaped module of about `size` bytes: its bulk is an incompressible data segment. */
function moduleOfSize(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  let x = 2463534242 ^ (seed * 2654435761);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  const pages = Math.ceil((size + 65536) / 65536);
  return Buffer.concat([
    Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
    section(1, [2, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f]),
    section(3, [2, 0, 1]),
    section(5, [1, 0, ...leb(pages)]),
    section(7, [3, ...name('memory'), 2, 0, ...name('proxy_abi_version_0_2_1'), 0, 0, ...name('malloc'), 0, 1]),
    section(10, [2, 2, 0, 0x0b, 4, 0, 0x41, 0, 0x0b]),
    section(11, Buffer.concat([Buffer.from([1, 0, 0x41, 0, 0x0b, ...leb(size)]), data])),
  ]);
}

async function main() {
  const registry = await startRegistry();
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wfs-bench-registry-'));
  const rows: string[] = [];
  const log = (line: string) => {
    rows.push(line);
    console.log(line);
  };
  log(`# ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model.trim()} · ${RUNS} runs, medians`);
  log('| module | push (CLI) | skopeo copy → registry | ratio | push in-process (ratio) | pull (CLI) | skopeo copy ← registry | ratio | re-push bytes |');
  log('|---|---|---|---|---|---|---|---|---|');
  try {
    for (const mb of [1, 20]) {
      const home = path.join(root, `home-${mb}`);
      const env = { ...process.env, WASM_FILTER_HOME: home, NO_COLOR: '1' };
      const store = path.join(home, 'store');
      const ours: number[] = [];
      const theirs: number[] = [];
      const inProcess: number[] = [];
      const pullOurs: number[] = [];
      const pullTheirs: number[] = [];
      let repush = -1;
      for (let i = 0; i < RUNS; i++) {
        // New content every run: neither side can skip or mount what an earlier run uploaded (skopeo keeps a
        // blob cache across runs and would mount). Each side pushes the same image to a repository of its own.
        const file = path.join(root, `module-${mb}-${i}.wasm`);
        await fs.writeFile(file, moduleOfSize(mb * 1_000_000, i + 1));
        const ref = `${registry.host}/bench/m${mb}-${i}:v1`;
        timed(process.execPath, [CLI, 'build', 'precompiled', file, '-t', ref, '--root-id', 'add_header'], env);
        const ourTarget = `${registry.host}/bench/ours-${mb}-${i}:v1`;
        const pushOurs = () => ours.push(timed(process.execPath, [CLI, 'push', ref, ourTarget], env).ms);
        const pushTheirs = () => theirs.push(timed('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${store}:${ref}`, `docker://${registry.host}/bench/skopeo-${mb}-${i}:v1`]).ms);
        if (i % 2) {
          pushTheirs();
          pushOurs();
        } else {
          pushOurs();
          pushTheirs();
        }
        // The library in a long-lived process (the extension): the transfer without a process start.
        const local = await LocalStore.open(store);
        const started = process.hrtime.bigint();
        await pushImage(local, ref, { clients: clientFactory({ credentials: { description: 'none', get: async () => undefined } }), target: `${registry.host}/bench/lib-${mb}-${i}:v1` });
        inProcess.push(Number(process.hrtime.bigint() - started) / 1e6);
        // Pulls into empty places on both sides.
        const pullHome = path.join(root, `pull-${mb}-${i}`);
        pullOurs.push(timed(process.execPath, [CLI, 'pull', ourTarget], { ...env, WASM_FILTER_HOME: pullHome }).ms);
        const layout = path.join(root, `skopeo-pull-${mb}-${i}`);
        pullTheirs.push(timed('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ourTarget}`, `oci:${layout}:v1`]).ms);
        if (i === 0) repush = JSON.parse(timed(process.execPath, [CLI, 'push', ref, ourTarget, '--json'], env).stdout).bytesTransferred;
      }
      const [a, b, c, d, e] = [median(ours), median(theirs), median(pullOurs), median(pullTheirs), median(inProcess)];
      log(`| ${mb} MB | ${a.toFixed(0)} ms | ${b.toFixed(0)} ms | **${(a / b).toFixed(2)}×** | ${e.toFixed(0)} ms (**${(e / b).toFixed(2)}×**) | ${c.toFixed(0)} ms | ${d.toFixed(0)} ms | **${(c / d).toFixed(2)}×** | ${repush} |`);
    }
  } finally {
    await registry.stop();
    await fs.rm(root, { recursive: true, force: true });
  }
  return rows;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
