import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { runCli, startRun, tempDir } from '../helpers/env';
import { hostileModule, localReplyModule } from '../helpers/hostModules';
import { filterWat, wat } from '../helpers/wasm';

describe('wasm-filter run', () => {
  it('reloads the module when the file is rebuilt, without a restart', async () => {
    const home = tempDir();
    const file = path.join(home, 'filter.wasm');
    await fs.writeFile(file, await wat(hostileModule()));
    const run = await startRun([file, '--config', 'rebuilt'], { home });
    try {
      const before = await fetch(`${run.url}/ok`);
      assert.equal(before.status, 200);
      assert.equal(JSON.parse(await before.text()).headers['x-added'], 'yes');
      // A rebuild replaces the file (write a temp file, rename over), as compilers and our build do.
      const next = path.join(home, 'filter.wasm.tmp');
      await fs.writeFile(next, await wat(localReplyModule('0.2.0')));
      await fs.rename(next, file);
      for (let i = 0; i < 100 && !/Reloaded/.test(run.output()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(run.output(), /Reloaded .*filter\.wasm \(ABI 0\.2\.0\)/);
      const after = await fetch(`${run.url}/ok`);
      assert.equal(after.status, 418);
      assert.equal(await after.text(), 'rebuilt');
    } finally {
      await run.stop();
    }
  });

  it('forwards to --upstream and says clearly what cannot run', async () => {
    const home = tempDir();
    const upstream = http.createServer((req, res) => res.end(`upstream saw ${req.headers['x-added']}`));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as { port: number }).port;
    const file = path.join(home, 'filter.wasm');
    await fs.writeFile(file, await wat(hostileModule()));
    const run = await startRun([file, '--upstream', `http://127.0.0.1:${port}`], { home });
    try {
      assert.equal(await (await fetch(`${run.url}/ok`)).text(), 'upstream saw yes');
      const busy = await runCli(['run', file, '--port', String(port)], { home });
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, new RegExp(`Port ${port} is in use[\\s\\S]*--port`));
    } finally {
      await run.stop();
      await new Promise<void>((r) => upstream.close(() => r()));
    }
    const noAbi = path.join(home, 'plain.wasm');
    await fs.writeFile(noAbi, await wat(filterWat({ abi: '' })));
    const refused = await runCli(['run', noAbi, '--port', '0'], { home });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot run: Missing or unknown Proxy-Wasm ABI version/);
  });
});
