import * as http from 'node:http';
import * as os from 'node:os';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { describeError } from '../errors';
import type { Cluster, KubeObject } from '../deploy/cluster';
import { detectCapabilities } from '../deploy/deploy';
import { MANAGED_BY, MANAGED_BY_LABEL, WORKLOAD_FILTERS_ANNOTATION } from '../deploy/istioObjects';
import { GROUP, KIND, PLURAL, VERSION } from './filterDeployment';
import { ImageResolver } from './imageResolver';
import { LeaderElector } from './leaderElection';
import { FilterDeploymentReconciler, RetryableError } from './reconciler';
import { WorkQueue } from './workQueue';

export type LogLevel = 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Structured logs: one JSON object per line. */
export function jsonLogger(write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  return (level, msg, fields) => write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
}

export interface OperatorOptions {
  /** Watch one namespace; all when unset. */
  namespace?: string;
  lease: { namespace: string; name: string; durationMs: number; retryMs: number };
  identity?: string;
  workers: number;
  backoff: { baseMs: number; maxMs: number };
  settleMs: number;
  resyncMs: number;
  tagTtlMs: number;
  /** host:port for /healthz and /metrics; none when unset. */
  listen?: string;
  log: Logger;
}

export const DEFAULT_OPERATOR_OPTIONS: Omit<OperatorOptions, 'log' | 'lease'> & { lease: Omit<OperatorOptions['lease'], 'namespace'> } = {
  lease: { name: 'wasm-filter-operator', durationMs: 15_000, retryMs: 2_000 },
  workers: 4,
  backoff: { baseMs: 1_000, maxMs: 300_000 },
  settleMs: 10_000,
  resyncMs: 300_000,
  tagTtlMs: 30_000,
};

type Informer = K8s.Informer<KubeObject> & K8s.ObjectCache<KubeObject>;

/**
 * The FilterDeployment operator: informers on FilterDeployments, on workloads (a new one that matches
 * gets the filter) and on the objects it owns (one deleted is made again), a work queue with per-key
 * backoff, a few workers, and leader election so that of several replicas exactly one reconciles.
 */
export class FilterDeploymentOperator {
  readonly metrics = new Registry();
  private readonly reconciles: Counter<'result'>;
  private readonly duration: Histogram;
  private readonly leaderGauge: Gauge;
  private readonly queue: WorkQueue;
  private readonly reconciler: FilterDeploymentReconciler;
  readonly images: ImageResolver;
  private readonly elector: LeaderElector;
  private informers: Informer[] = [];
  private fdInformer: Informer | undefined;
  private workers: Promise<void>[] = [];
  private server: http.Server | undefined;
  private running = false;
  /** Counts of reconciles and writes, for tests and benchmarks. */
  readonly stats = { reconciles: 0, writes: 0, failures: 0 };
  readonly identity: string;
  private informerErrors = 0;
  private stopping = false;
  onLostLeadership?: () => void;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: OperatorOptions,
  ) {
    this.identity = options.identity ?? `${os.hostname()}-${process.pid}`;
    this.queue = new WorkQueue(options.backoff);
    this.images = new ImageResolver(cluster, { tagTtlMs: options.tagTtlMs });
    this.reconciler = new FilterDeploymentReconciler(cluster, this.images, { settleMs: options.settleMs, resyncMs: options.resyncMs, log: options.log });
    this.elector = new LeaderElector(cluster, {
      namespace: options.lease.namespace,
      name: options.lease.name,
      identity: this.identity,
      leaseDurationMs: options.lease.durationMs,
      retryMs: options.lease.retryMs,
      onStartedLeading: () => void this.startControllers().catch((err) => options.log('error', 'could not start the controllers', { error: describeError(err) })),
      onStoppedLeading: () => {
        void this.stopControllers();
        if (!this.stopping) this.onLostLeadership?.();
      },
      log: options.log,
    });
    collectDefaultMetrics({ register: this.metrics, prefix: 'wasm_filter_operator_' });
    this.reconciles = new Counter({ name: 'wasm_filter_operator_reconcile_total', help: 'FilterDeployment reconciles by result.', labelNames: ['result'], registers: [this.metrics] });
    this.duration = new Histogram({ name: 'wasm_filter_operator_reconcile_duration_seconds', help: 'Time one reconcile takes.', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.metrics] });
    this.leaderGauge = new Gauge({ name: 'wasm_filter_operator_leader', help: '1 while this replica holds the lease.', registers: [this.metrics] });
    const depth = new Gauge({ name: 'wasm_filter_operator_queue_depth', help: 'FilterDeployments waiting to be reconciled.', registers: [this.metrics] });
    const requests = new Gauge({ name: 'wasm_filter_operator_api_requests', help: 'Kubernetes API requests made so far.', registers: [this.metrics] });
    const lookups = new Gauge({ name: 'wasm_filter_operator_registry_lookups', help: 'Image lookups in registries so far.', registers: [this.metrics] });
    const managed = new Gauge({ name: 'wasm_filter_operator_filterdeployments', help: 'FilterDeployments in the cache.', registers: [this.metrics] });
    // Gauges are read when scraped.
    this.refreshGauges = () => {
      depth.set(this.queue.length);
      requests.set(this.cluster.requests);
      lookups.set(this.images.lookups);
      managed.set(this.fdInformer?.list().length ?? 0);
      this.leaderGauge.set(this.elector.isLeader ? 1 : 0);
    };
  }

  private readonly refreshGauges: () => void;

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** Starts the health and metrics endpoint and leader election; controllers run while leading. */
  async start(): Promise<void> {
    if (this.options.listen) await this.listen(this.options.listen);
    this.options.log('info', 'operator started', { identity: this.identity, namespace: this.options.namespace ?? '(all)', lease: `${this.options.lease.namespace}/${this.options.lease.name}` });
    this.elector.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.stopControllers();
    await this.elector.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  /** The address the endpoint listens on, e.g. 127.0.0.1:8080 (port 0 picks one). */
  address(): string | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? `${a.address}:${a.port}` : undefined;
  }

  private async listen(spec: string): Promise<void> {
    const i = spec.lastIndexOf(':');
    const host = i > 0 ? spec.slice(0, i) : '0.0.0.0';
    const port = Number(i >= 0 ? spec.slice(i + 1) : spec);
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        // Ready when leading with synced caches, or standing by; not while the caches keep failing.
        const ok = this.informerErrors < 5;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'informers failing\n');
      } else if (path === '/metrics') {
        this.refreshGauges();
        this.metrics.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
          (err) => res.writeHead(500).end(String(err)),
        );
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
  }

  private path(group: string, version: string, plural: string): string {
    const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
    return this.options.namespace ? `${base}/namespaces/${this.options.namespace}/${plural}` : `${base}/${plural}`;
  }

  private informer(group: string, version: string, plural: string, labelSelector?: string): Informer {
    const k8s = this.cluster.k8s;
    const ns = this.options.namespace;
    const list = async () => {
      this.cluster.requests++;
      const args = { group, version, plural, ...(labelSelector ? { labelSelector } : {}) };
      if (group === 'apps') {
        const apps = this.cluster.apps;
        const p = { ...(labelSelector ? { labelSelector } : {}) };
        if (plural === 'deployments') return ns ? apps.listNamespacedDeployment({ namespace: ns, ...p }) : apps.listDeploymentForAllNamespaces(p);
        if (plural === 'daemonsets') return ns ? apps.listNamespacedDaemonSet({ namespace: ns, ...p }) : apps.listDaemonSetForAllNamespaces(p);
        return ns ? apps.listNamespacedStatefulSet({ namespace: ns, ...p }) : apps.listStatefulSetForAllNamespaces(p);
      }
      return (ns ? this.cluster.custom.listNamespacedCustomObject({ ...args, namespace: ns }) : this.cluster.custom.listClusterCustomObject(args)) as Promise<K8s.KubernetesListObject<KubeObject>>;
    };
    const informer = k8s.makeInformer<KubeObject>(this.cluster.config, this.path(group, version, plural), list as () => Promise<K8s.KubernetesListObject<KubeObject>>, labelSelector) as Informer;
    // client-node's informer stops on an error other than 410; start it again after a pause.
    informer.on('error', (err: unknown) => {
      this.informerErrors++;
      if (!this.running) return;
      this.options.log('warn', 'watch failed; starting it again', { resource: plural, error: describeError(err) });
      setTimeout(() => {
        if (this.running) void informer.start().catch(() => undefined);
      }, Math.min(1000 * this.informerErrors, 30_000)).unref();
    });
    informer.on('connect', () => (this.informerErrors = 0));
    this.informers.push(informer);
    return informer;
  }

  private enqueue(o: KubeObject | undefined): void {
    if (o?.metadata?.name && o.metadata.namespace) this.queue.add(`${o.metadata.namespace}/${o.metadata.name}`);
  }

  private async startControllers(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const caps = await detectCapabilities(this.cluster);
    if (!caps.filterDeploymentCrd) {
      this.options.log('error', 'the FilterDeployment CRD is not installed; waiting for it', { hint: 'kubectl apply -f deploy/crd.yaml (or: wasm-filter operator crd | kubectl apply -f -)' });
    }
    const fds = (this.fdInformer = this.informer(GROUP, VERSION, PLURAL));
    // Only changes that ask for work: a new generation (spec) or a delete. The echoes of the operator's own
    // finalizer and status writes are not (controller-runtime's GenerationChangedPredicate).
    const seen = new Map<string, string>();
    const onFd = (o: KubeObject) => {
      const key = `${o.metadata?.namespace}/${o.metadata?.name}`;
      const signature = `${o.metadata?.generation}|${!!o.metadata?.deletionTimestamp}`;
      if (seen.get(key) === signature) return;
      seen.set(key, signature);
      this.enqueue(o);
    };
    fds.on('add', onFd);
    fds.on('update', onFd);
    fds.on('delete', (o) => seen.delete(`${o.metadata?.namespace}/${o.metadata?.name}`));
    // A workload that appears, changes labels or goes: the FilterDeployments of its namespace that select it.
    const wake = (w: KubeObject) => {
      for (const fd of fds.list(w.metadata?.namespace)) {
        const labels = (fd.spec?.deployment?.istio?.labels ?? {}) as Record<string, string>;
        const kind = fd.spec?.deployment?.istio?.kind ?? 'Deployment';
        if (kind !== w.kind && w.kind) continue;
        const mine = (w.metadata?.labels ?? {}) as Record<string, string>;
        const selected = Object.entries(labels).every(([k, v]) => mine[k] === v);
        const annotated = String(w.spec?.template?.metadata?.annotations?.[WORKLOAD_FILTERS_ANNOTATION] ?? '').length > 0;
        if (selected || annotated) this.enqueue(fd);
      }
    };
    for (const [plural, kind] of [['deployments', 'Deployment'], ['daemonsets', 'DaemonSet'], ['statefulsets', 'StatefulSet']] as const) {
      const inf = this.informer('apps', 'v1', plural);
      // A workload matters when it comes, goes, or changes labels (not when its annotations or status do).
      const labelsOf = new Map<string, string>();
      const key = (o: KubeObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;
      inf.on('add', (o) => {
        labelsOf.set(key(o), JSON.stringify(o.metadata?.labels ?? {}));
        wake({ ...o, kind });
      });
      inf.on('update', (o) => {
        const labels = JSON.stringify(o.metadata?.labels ?? {});
        if (labelsOf.get(key(o)) === labels) return;
        labelsOf.set(key(o), labels);
        wake({ ...o, kind });
      });
      inf.on('delete', (o) => {
        labelsOf.delete(key(o));
        wake({ ...o, kind });
      });
    }
    // What the operator made, deleted by someone else: its owner makes it again. (A changed one is put right
    // at the next resync; reacting to every update would also react to the operator's own writes.)
    const owned = (o: KubeObject) => {
      const owner = o.metadata?.ownerReferences?.find((r) => r.kind === KIND);
      if (owner && o.metadata?.namespace) this.queue.add(`${o.metadata.namespace}/${owner.name}`);
    };
    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    if (caps.envoyFilterCrd) {
      this.informer('networking.istio.io', 'v1alpha3', 'envoyfilters', selector).on('delete', owned);
    }
    if (caps.wasmPluginCrd) {
      this.informer('extensions.istio.io', 'v1alpha1', 'wasmplugins', selector).on('delete', owned);
    }
    await Promise.all(this.informers.map((i) => i.start()));
    this.workers = Array.from({ length: this.options.workers }, () => this.work());
    this.options.log('info', 'controllers started', { filterDeployments: fds.list().length, envoyFilters: caps.envoyFilterCrd, wasmPlugins: caps.wasmPluginCrd });
  }

  private async stopControllers(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const i of this.informers) await i.stop();
    this.informers = [];
    this.queue.shutDown();
    await Promise.all(this.workers);
    this.workers = [];
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.take();
      if (key === undefined) return;
      const [namespace, name] = key.split('/') as [string, string];
      const fd = this.fdInformer?.get(name, namespace);
      const started = process.hrtime.bigint();
      try {
        if (!fd || !this.running) continue; // gone: ownerReferences and the finalizer took care of it
        this.stats.reconciles++;
        const result = await this.reconciler.reconcile(fd);
        this.stats.writes += result.writes;
        this.queue.forget(key);
        this.reconciles.inc({ result: 'success' });
        if (result.writes) this.options.log('info', 'reconciled', { filterDeployment: key, writes: result.writes });
        if (result.requeueAfterMs) this.queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        this.stats.failures++;
        this.reconciles.inc({ result: 'error' });
        const delay = this.queue.retryLater(key);
        this.options.log(err instanceof RetryableError ? 'warn' : 'error', 'reconcile failed; retrying', { filterDeployment: key, error: describeError(err).split('\n')[0], retryInMs: delay, attempt: this.queue.failuresOf(key) });
      } finally {
        this.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
        this.queue.done(key);
      }
    }
  }
}
