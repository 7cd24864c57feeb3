import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/env';

/** What `vsce package` would put in the .vsix: everything the extension loads at run time, nothing else. */
describe('the packaged extension', () => {
  it('holds every bundle the extension loads (the Kubernetes client and the VM worker too) and every template', async () => {
    const vsce = path.join(REPO_ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
    const { stdout } = await promisify(execFile)(process.execPath, [vsce, 'ls', '--no-dependencies'], { cwd: REPO_ROOT, maxBuffer: 8 << 20 });
    const files = new Set(stdout.split('\n').map((l) => l.trim()).filter(Boolean));
    const bundles = (await fs.readdir(path.join(REPO_ROOT, 'dist'))).filter((f) => f.endsWith('.js'));
    for (const b of ['extension.js', 'k8s.js', 'vmWorker.js', 'ascWorker.js']) assert.ok(bundles.includes(b), `dist/${b} is built`);
    for (const b of bundles) assert.ok(files.has(`dist/${b}`), `dist/${b} is packaged`);
    const templates = (await fs.readdir(path.join(REPO_ROOT, 'templates'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.relative(REPO_ROOT, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'));
    for (const t of templates) assert.ok(files.has(t), `${t} is packaged`);
    assert.deepEqual([...files].filter((f) => /^(src|test|bench|out|deploy|node_modules)\//.test(f) || f.endsWith('.map')), [], 'no sources, tests or maps');
  });
});
