import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../core/errors';
import { FilterRuntime } from '../core/host/filterRuntime';
import { resolveFilterSource } from '../core/host/filterSource';
import { startEchoUpstream, startProxy } from '../core/host/proxyServer';
import { LOG_LEVEL_NAMES, type LogLevelName } from '../core/host/abi';
import type { FilterLog } from '../core/host/vm';
import type { LocalStore } from '../core/store/localStore';
import type { Output } from './output';

function parseCluster(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new UserError(`--cluster takes NAME=URL, not "${value}".`, 'e.g. --cluster auth=http://127.0.0.1:9000', 'E_USAGE');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** `wasm-filter run`: the filter on real HTTP traffic, on this machine, with no Envoy and no cluster. */
export function addRunCommand(program: Command, out: Output, helpers: { openStore: () => Promise<LocalStore>; interruptSignal: () => AbortSignal }): void {
  program
    .command('run')
    .description('run a filter in a local HTTP proxy on 127.0.0.1 (a built-in echo upstream unless --upstream)')
    .argument('[target]', 'a project folder, a .wasm file, or an image in the store', '.')
    .option('--config <string>', "the plugin configuration (what wasme's --config and Istio's pluginConfig deliver)")
    .option('--config-file <file>', 'read the plugin configuration from a file')
    .option('--vm-config <string>', 'the VM configuration')
    .option('--root-id <id>', 'the root id (default: the project or image root id)')
    .option('--port <port>', 'the port to listen on', '8080')
    .option('--upstream <url>', 'where requests go after the filter (default: a built-in echo server)')
    .option('--cluster <name=url>', 'a named upstream the filter may call with proxy_http_call (repeatable)', parseCluster)
    .option('--fail-open', 'when the filter fails, pass requests through instead of answering 500')
    .option('--timeout-ms <ms>', 'the longest one filter callback may run', '1000')
    .option('--log-level <level>', `the filter's log level: ${LOG_LEVEL_NAMES.join(', ')}`, 'info')
    .action(async (target: string, opts) => {
      if (opts.config !== undefined && opts.configFile) throw new UserError('Give --config or --config-file, not both.', undefined, 'E_USAGE');
      if (!LOG_LEVEL_NAMES.includes(opts.logLevel)) throw new UserError(`--log-level must be one of ${LOG_LEVEL_NAMES.join(', ')}.`, undefined, 'E_USAGE');
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port must be a port number, not "${opts.port}".`, undefined, 'E_USAGE');
      const signal = helpers.interruptSignal();
      // A service manager stops with SIGTERM; treat it as Ctrl-C so the proxy closes cleanly.
      const onTerm = () => process.emit('SIGINT');
      process.once('SIGTERM', onTerm);
      const pluginConfiguration = opts.configFile ? await fs.readFile(opts.configFile, 'utf8') : (opts.config ?? '');
      const source = await resolveFilterSource(target, { store: helpers.openStore, signal, onLog: (l) => out.info(l) });
      const rootId = opts.rootId ?? source.rootId ?? 'add_header';
      const onLog = (l: FilterLog) => out.info(`${out.dim(`[${l.level}]`)} ${l.message}`);
      const start = (wasm: Uint8Array) =>
        FilterRuntime.start(wasm, {
          rootId,
          pluginConfiguration,
          ...(opts.vmConfig ? { vmConfiguration: opts.vmConfig } : {}),
          logLevel: opts.logLevel as LogLevelName,
          callbackTimeoutMs: Number(opts.timeoutMs),
          onLog,
        });
      let runtime: FilterRuntime;
      try {
        runtime = await start(source.wasm);
      } catch (err) {
        throw new UserError(`${source.description} cannot run: ${(err as Error).message}.`, 'Check that it is a proxy-wasm filter and that the root id and configuration are the ones it expects.', 'E_FILTER_START');
      }
      const echo = opts.upstream ? undefined : await startEchoUpstream();
      const upstream = opts.upstream ?? echo!.url;
      let proxy;
      try {
        proxy = await startProxy(runtime, { port, upstream, clusters: opts.cluster ?? {}, failStrategy: opts.failOpen ? 'open' : 'closed', onEvent: (e) => out.info(out.yellow(e)) });
      } catch (err) {
        await runtime.stop();
        await echo?.close();
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UserError(`Port ${port} is in use.`, 'Choose another with --port (0 picks a free one).', 'E_PORT_IN_USE');
        throw err;
      }
      out.line(`${out.green('Running')} ${source.description} (ABI ${runtime.abi}, root id ${rootId}) at ${proxy.url} → ${opts.upstream ?? 'the built-in echo upstream'}`);
      out.line(out.dim(`Try: curl -v ${proxy.url}/   (Ctrl-C stops)`));
      const stopWatching = source.watch((wasm) => {
        start(wasm).then(
          (next) => {
            proxy.setRuntime(next);
            out.line(`${out.green('Reloaded')} ${source.description} (ABI ${next.abi})`);
          },
          (err) => out.warn(`the rebuilt module cannot run, keeping the previous one: ${(err as Error).message}`),
        );
      });
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      stopWatching();
      await proxy.close();
      await echo?.close();
      out.line('Stopped.');
    });
}
