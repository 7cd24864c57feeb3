// The main job on an embedded default, end to end and offline: scaffold the add-header filter into a
// temporary folder, build it, run it in the local proxy (built-in echo upstream), send one request, show
// the answer, stop. Run with `npm run demo`.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const cli = path.resolve(import.meta.dirname, '..', 'dist', 'cli.js');
const home = mkdtempSync(path.join(os.tmpdir(), 'wasm-filter-demo-'));
const env = { ...process.env, WASM_FILTER_HOME: home };
const project = path.join(home, 'add-header');
const step = (title, args) => {
  console.log(`\n$ wasm-filter ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { env, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`${title} failed`);
    process.exit(r.status ?? 1);
  }
};
try {
  step('init', ['init', project, '--yes']);
  step('build', ['build', project, '-t', 'add-header:v1']);
  step('list', ['list']);
  console.log(`\n$ wasm-filter run ${project} --port 0`);
  const run = spawn(process.execPath, [cli, 'run', project, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    run.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
      const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    run.on('exit', (code) => reject(new Error(`run exited with ${code}`)));
  });
  console.log(`\n$ curl -i ${url}/`);
  const response = await fetch(`${url}/`);
  console.log(`HTTP/1.1 ${response.status} ${response.statusText}`);
  for (const [k, v] of response.headers) console.log(`${k}: ${v}`);
  console.log(`\n${(await response.text()).trim()}`);
  run.removeAllListeners('exit');
  run.kill('SIGINT');
  await new Promise((r) => run.on('exit', r));
  process.exitCode = response.headers.get('hello') === 'world!' ? 0 : 1;
} finally {
  rmSync(home, { recursive: true, force: true });
}
