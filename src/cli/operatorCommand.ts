import { Command } from 'commander';
import * as yaml from 'js-yaml';
import { UserError } from '../core/errors';
import { filterDeploymentCrd } from '../core/operator/filterDeployment';
import { DEFAULT_OPERATOR_OPTIONS, FilterDeploymentOperator, jsonLogger } from '../core/operator/operator';
import { clusterOptions, durationMs, openCluster } from './deployCommands';
import type { Output } from './output';

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} takes a whole number of at least 1, not "${text}".`, undefined, 'E_USAGE');
  return n;
}

/** `wasm-filter operator`: runs the FilterDeployment operator in this process (what its Deployment runs). */
export function addOperatorCommand(program: Command, out: Output): void {
  const d = DEFAULT_OPERATOR_OPTIONS;
  const operator = clusterOptions(
    program
      .command('operator')
      .description('run the FilterDeployment operator: wasme.io/v1 FilterDeployments become WasmPlugins or EnvoyFilters')
      .option('-n, --namespace <ns>', 'watch only this namespace (default: all)')
      .option('--lease-namespace <ns>', 'where the leader-election Lease lives (default: $POD_NAMESPACE, else wasm-filter-system)')
      .option('--lease-name <name>', 'the Lease', d.lease.name)
      .option('--identity <id>', 'this replica in the Lease (default: $POD_NAME, else host-pid)')
      .option('--listen <host:port>', '/healthz, /readyz and /metrics (empty to turn off)', '0.0.0.0:8080')
      .option('--workers <n>', 'FilterDeployments reconciled at once', String(d.workers))
      .option('--settle <duration>', 'after a change, how long proxies get before their logs are read', `${d.settleMs / 1000}s`)
      .option('--resync <duration>', 'how often settled FilterDeployments are checked for proxy errors', `${d.resyncMs / 60_000}m`)
      .option('--lease-duration <duration>', 'how long the lease holds without renewal', `${d.lease.durationMs / 1000}s`)
      .option('--lease-retry <duration>', 'how often the lease is renewed or tried', `${d.lease.retryMs / 1000}s`)
      .option('--retry-base <duration>', 'first delay after a failed reconcile (doubling each time)', `${d.backoff.baseMs / 1000}s`)
      .option('--retry-max <duration>', 'longest delay between retries', `${d.backoff.maxMs / 60_000}m`),
  ).action(async (opts) => {
    const log = jsonLogger();
    const cluster = await openCluster(opts);
    const op = new FilterDeploymentOperator(cluster, {
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      lease: {
        namespace: opts.leaseNamespace ?? process.env.POD_NAMESPACE ?? 'wasm-filter-system',
        name: opts.leaseName,
        durationMs: durationMs(opts.leaseDuration, '--lease-duration'),
        retryMs: durationMs(opts.leaseRetry, '--lease-retry'),
      },
      ...(opts.identity ?? process.env.POD_NAME ? { identity: opts.identity ?? process.env.POD_NAME } : {}),
      workers: positive(opts.workers, '--workers'),
      backoff: { baseMs: durationMs(opts.retryBase, '--retry-base'), maxMs: durationMs(opts.retryMax, '--retry-max') },
      settleMs: durationMs(opts.settle, '--settle'),
      resyncMs: durationMs(opts.resync, '--resync'),
      tagTtlMs: d.tagTtlMs,
      ...(opts.listen ? { listen: opts.listen } : {}),
      log,
    });
    await op.start();
    if (op.address()) log('info', 'serving /healthz, /readyz and /metrics', { address: op.address() });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log('info', 'stopping', { signal });
        void op.stop().then(resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      // As controller-runtime does: a replica that lost the lease exits, and comes back as a candidate.
      op.onLostLeadership = () => {
        log('error', 'lost the lease; exiting so that only the new leader reconciles');
        process.exitCode = 1;
        void op.stop().then(resolve);
      };
    });
    // A server command: once stopped, nothing of it should keep the process (client keep-alive sockets).
    process.exit(process.exitCode ?? 0);
  });

  operator
    .command('crd')
    .description('print the FilterDeployment CRD (kubectl apply -f -)')
    .action(() => out.line(yaml.dump(filterDeploymentCrd(), { lineWidth: 120, noRefs: true }).trimEnd()));
}
