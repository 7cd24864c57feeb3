import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../core/fsAtomic';
import { FILTER_TEST_FILE, formatJunit, formatTap, loadFilterTests, runFilterTest } from '../core/host/filterTests';
import { resolveFilterSource } from '../core/host/filterSource';
import { ProxyWasmVm } from '../core/host/vm';
import type { LocalStore } from '../core/store/localStore';
import type { Output } from './output';

/** `wasm-filter test`: the project's declarative filter tests, in the host, without network. */
export function addTestCommand(program: Command, out: Output, helpers: { openStore: () => Promise<LocalStore>; interruptSignal: () => AbortSignal }): void {
  program
    .command('test')
    .description(`run a filter's declarative tests (${FILTER_TEST_FILE}) in the local host; TAP on stdout, exit 1 on failure`)
    .argument('[target]', 'a project folder, a .wasm file, or an image in the store', '.')
    .option('--file <file>', `the tests (default: ${FILTER_TEST_FILE} in the project)`)
    .option('--junit <file>', 'also write JUnit XML here')
    .option('--root-id <id>', 'the root id (default: the project or image root id)')
    .action(async (target: string, opts: { file?: string; junit?: string; rootId?: string }) => {
      const isDir = await fs.stat(target).then((s) => s.isDirectory(), () => false);
      const file = opts.file ?? path.join(isDir ? target : '.', FILTER_TEST_FILE);
      const tests = await loadFilterTests(file);
      const source = await resolveFilterSource(target, { store: helpers.openStore, signal: helpers.interruptSignal(), onLog: (l) => out.info(l) });
      const module = ProxyWasmVm.compile(source.wasm);
      const rootId = opts.rootId ?? source.rootId;
      const results = tests.map((t) => runFilterTest(module, t, rootId ? { rootId } : {}));
      out.line(formatTap(results).trimEnd());
      if (opts.junit) await writeFileAtomic(opts.junit, formatJunit(results, source.description));
      const failed = results.filter((r) => !r.ok).length;
      if (failed) process.exitCode = 1;
    });
}
