import { describeError, UserError } from '../errors';
import type { Cluster, KubeObject } from '../deploy/cluster';
import { deployFilter, detectCapabilities, pruneFilter, undeployFilter, type ClusterCapabilities, type DeployResult } from '../deploy/deploy';
import type { FilterToDeploy } from '../deploy/istioObjects';
import { collectFindings, type Finding } from '../deploy/proxyFindings';
import {
  FINALIZER,
  GROUP,
  InvalidSpecError,
  KIND,
  PLURAL,
  readFilterDeployment,
  VERSION,
  type Condition,
  type FilterDeploymentStatus,
  type WorkloadState,
} from './filterDeployment';
import type { ImageResolver } from './imageResolver';

const GVR = { group: GROUP, version: VERSION, plural: PLURAL };

export interface ReconcileResult {
  /** Look again after this long (proxies settling, or the periodic check of what they say). */
  requeueAfterMs?: number;
  /** Writes this reconcile made (0 when everything already was as wanted). */
  writes: number;
}

/** A failure worth retrying with backoff (the status already says why). */
export class RetryableError extends Error {}

export interface ReconcilerOptions {
  /** After a change, how long proxies get to load it before their logs are read. */
  settleMs: number;
  /** How long what the cluster offers is kept before it is read again. */
  capabilitiesTtlMs?: number;
  /** How often a settled FilterDeployment is looked at again for new proxy findings. */
  resyncMs: number;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * Brings the cluster to what one FilterDeployment asks for, level-based: every run reads the current
 * state and writes only what differs, so a repeat (or a restart) writes nothing.
 */
export class FilterDeploymentReconciler {
  /** What the cluster offers (CRDs, Istio's version), kept for a while: it rarely changes, and every reconcile needs it. */
  private readonly capabilities = new Map<string, { at: number; caps: Promise<ClusterCapabilities> }>();

  constructor(
    private readonly cluster: Cluster,
    private readonly images: ImageResolver,
    private readonly options: ReconcilerOptions,
  ) {}

  private capabilitiesFor(istioNamespace: string, istiodName?: string): Promise<ClusterCapabilities> {
    const key = `${istioNamespace}|${istiodName ?? ''}`;
    const hit = this.capabilities.get(key);
    if (hit && Date.now() - hit.at < (this.options.capabilitiesTtlMs ?? 60_000)) return hit.caps;
    const caps = detectCapabilities(this.cluster, { istioNamespace, ...(istiodName ? { istiodName } : {}) });
    this.capabilities.set(key, { at: Date.now(), caps });
    caps.catch(() => this.capabilities.delete(key));
    return caps;
  }

  async reconcile(fd: KubeObject): Promise<ReconcileResult> {
    const name = fd.metadata!.name!;
    const namespace = fd.metadata!.namespace!;
    const finalizers = fd.metadata!.finalizers ?? [];
    let writes = 0;

    if (fd.metadata!.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return { writes };
      const id = String(fd.spec?.filter?.id ?? `${name}.${namespace}`);
      const undone = await undeployFilter(this.cluster, { id, namespace }).catch((err) => {
        if (err instanceof UserError && err.code === 'E_NOT_DEPLOYED') return { changes: [] };
        throw err;
      });
      await this.patchFinalizers(fd, finalizers.filter((f) => f !== FINALIZER));
      this.options.log('info', 'restored the workloads and let the FilterDeployment go', { filterDeployment: `${namespace}/${name}`, changes: undone.changes.length });
      return { writes: undone.changes.length + 1 };
    }
    if (!finalizers.includes(FINALIZER)) {
      fd = await this.patchFinalizers(fd, [...finalizers, FINALIZER]);
      writes++;
    }

    let target;
    try {
      target = readFilterDeployment(fd);
    } catch (err) {
      if (!(err instanceof InvalidSpecError)) throw err;
      writes += await this.writeStatus(fd, { failed: { reason: 'InvalidSpec', message: err.message } });
      return { writes }; // nothing to retry until the spec changes
    }

    let result: DeployResult;
    let f: FilterToDeploy;
    try {
      const image = await this.images.resolve(target);
      f = {
        id: target.id,
        namespace,
        image: image.image,
        manifestDigest: image.manifestDigest,
        wasmDigest: image.wasmDigest,
        rootId: target.rootId ?? image.rootIds[0] ?? 'add_header',
        ...(target.config !== undefined ? { config: target.config } : {}),
        labels: target.labels,
        workloadKind: target.workloadKind,
        patchContext: target.patchContext,
        owner: { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name, uid: fd.metadata!.uid! },
        ...(target.pullSecret ? { wasmPlugin: { imagePullSecret: target.pullSecret } } : {}),
      };
      result = await deployFilter(this.cluster, f, {
        mode: target.mode,
        istioNamespace: target.istioNamespace,
        ...(target.istiodName ? { istiodName: target.istiodName } : {}),
        abiVersions: image.abiVersions,
        cacheTimeoutMs: 0,
        capabilities: await this.capabilitiesFor(target.istioNamespace, target.istiodName),
      });
      writes += result.writes;
      // Only the workloads the last run reported can hold this filter's annotations (a mode change included);
      // a FilterDeployment without a status has annotated nothing yet.
      const previous = Object.keys(fd.status?.workloads ?? {});
      writes += (await pruneFilter(this.cluster, f, result, previous)).length;
    } catch (err) {
      const code = err instanceof UserError ? err.code : 'E_INTERNAL';
      const reason = REASONS[code] ?? (code.startsWith('E_REGISTRY') || /registry|manifest|blob/i.test(describeError(err)) ? 'ImageUnavailable' : 'DeployFailed');
      writes += await this.writeStatus(fd, { failed: { reason, message: describeError(err).split('\n')[0]! } });
      // No matching workload is not retried on a timer: a new workload wakes this FilterDeployment up.
      if (code === 'E_NO_WORKLOADS') return { writes };
      throw new RetryableError(`${reason}: ${describeError(err).split('\n')[0]}`);
    }

    // What the proxies say: only once they had time to load this change.
    const settling = result.writes > 0;
    let findings: Finding[] = [];
    if (!settling) {
      findings = await collectFindings(this.cluster, { namespace, labels: target.labels, since: new Date(Date.now() - Math.max(this.options.resyncMs * 2, 600_000)), limitBytes: 64 * 1024 }).catch(() => []);
      findings = findings.filter((x) => !x.filter || [f.id, f.rootId, f.wasmDigest, f.image, `oci://${f.image}`].some((k) => x.filter === k || x.filter!.startsWith(k) || k.startsWith(x.filter!)));
    }
    writes += await this.writeStatus(fd, { applied: { workloads: result.workloads, settling, findings } });
    return { writes, requeueAfterMs: settling ? this.options.settleMs : this.options.resyncMs };
  }

  /** Best effort: an Event that cannot be written does not fail the reconcile. */
  private async event(fd: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { name, namespace, uid } = fd.metadata!;
    const now = new Date();
    await this.cluster
      .call({ verb: 'create', resource: 'events', namespace: namespace! }, () =>
        this.cluster.core.createNamespacedEvent({
          namespace: namespace!,
          body: {
            metadata: { name: `${name}.${now.getTime().toString(16)}`, namespace: namespace! },
            involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name: name!, namespace: namespace!, uid: uid! },
            type,
            reason,
            message: message.slice(0, 1024),
            source: { component: 'wasm-filter-operator' },
            reportingComponent: 'wasm-filter-operator',
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        }),
      )
      .catch((err) => this.options.log('warn', 'could not record an Event', { filterDeployment: `${namespace}/${name}`, error: describeError(err).split('\n')[0] }));
  }

  private async patchFinalizers(fd: KubeObject, finalizers: string[]): Promise<KubeObject> {
    const { name, namespace, resourceVersion } = fd.metadata!;
    return (await this.cluster.call({ verb: 'patch', resource: PLURAL, namespace: namespace!, name: name! }, () =>
      this.cluster.custom.patchNamespacedCustomObject({ ...GVR, namespace: namespace!, name: name!, body: { metadata: { finalizers, resourceVersion } } }, this.cluster.mergePatch),
    )) as KubeObject;
  }

  /** Writes the status when it differs from what is there (conditions keep their time unless they change). */
  private async writeStatus(
    fd: KubeObject,
    outcome: { failed: { reason: string; message: string } } | { applied: { workloads: string[]; settling: boolean; findings: Finding[] } },
  ): Promise<number> {
    const old = (fd.status ?? {}) as FilterDeploymentStatus;
    const generation = fd.metadata!.generation;
    const workloads: NonNullable<FilterDeploymentStatus['workloads']> = {};
    const conditions: Condition[] = [];
    const condition = (type: string, status: Condition['status'], reason: string, message: string) => {
      const before = old.conditions?.find((c) => c.type === type);
      const same = before && before.status === status;
      conditions.push({ type, status, reason, message, lastTransitionTime: same ? before.lastTransitionTime : new Date().toISOString(), ...(generation ? { observedGeneration: generation } : {}) });
    };
    let reason = '';
    if ('failed' in outcome) {
      reason = outcome.failed.message;
      for (const w of Object.keys(old.workloads ?? {})) workloads[w] = { state: 'Failed', reason: outcome.failed.reason };
      condition('Ready', 'False', outcome.failed.reason, outcome.failed.message);
      condition('ProxiesHealthy', 'Unknown', 'NotDeployed', 'Nothing is deployed to read proxies about.');
    } else {
      const { settling, findings } = outcome.applied;
      for (const w of outcome.applied.workloads) {
        const problem = findings.find((x) => x.pod.startsWith(`${w}-`) && x.severity === 'error');
        const state: WorkloadState = settling ? 'Pending' : problem ? 'Failed' : 'Succeeded';
        workloads[w] = { state, ...(problem ? { reason: `${problem.kind}: ${problem.advice}` } : settling ? { reason: 'waiting for the proxies to load the filter' } : {}) };
      }
      const failing = Object.values(workloads).filter((w) => w.state === 'Failed').length;
      condition('Ready', 'True', 'Applied', `Deployed to ${outcome.applied.workloads.length} workload(s).`);
      if (settling) condition('ProxiesHealthy', 'Unknown', 'Settling', 'The proxies are loading the change.');
      else if (failing) condition('ProxiesHealthy', 'False', 'ProxyErrors', `istio-proxy reports problems in ${failing} workload(s); see status.workloads.`);
      else condition('ProxiesHealthy', 'True', 'NoErrors', 'istio-proxy reports no problem with this filter.');
      if (failing) reason = `istio-proxy reports problems in ${failing} workload(s)`;
    }
    const status: FilterDeploymentStatus = { ...(generation ? { observedGeneration: generation } : {}), reason, workloads, conditions };
    if (JSON.stringify(normalize(old)) === JSON.stringify(normalize(status))) return 0;
    // A change of readiness is also an Event on the FilterDeployment (kubectl describe shows it); a retry that
    // fails the same way again is not.
    const wasReady = old.conditions?.find((c) => c.type === 'Ready');
    const ready = conditions.find((c) => c.type === 'Ready')!;
    if (!wasReady || wasReady.status !== ready.status || wasReady.reason !== ready.reason || (ready.status === 'True' && old.observedGeneration !== generation)) {
      await this.event(fd, ready.status === 'True' ? 'Normal' : 'Warning', ready.reason, ready.message);
    }
    // A merge patch: workloads that went, and reasons that no longer apply, are sent as null.
    const patchWorkloads: Record<string, unknown> = Object.fromEntries(Object.entries(workloads).map(([w, v]) => [w, { state: v.state, reason: v.reason ?? null }]));
    for (const w of Object.keys(old.workloads ?? {})) if (!(w in workloads)) patchWorkloads[w] = null;
    const { name, namespace } = fd.metadata!;
    await this.cluster.call({ verb: 'patch', resource: `${PLURAL}/status`, namespace: namespace!, name: name! }, () =>
      this.cluster.custom.patchNamespacedCustomObjectStatus({ ...GVR, namespace: namespace!, name: name!, body: { status: { ...status, workloads: patchWorkloads } } }, this.cluster.mergePatch),
    );
    return 1;
  }
}

function normalize(s: FilterDeploymentStatus): unknown {
  return {
    observedGeneration: s.observedGeneration,
    reason: s.reason ?? '',
    workloads: Object.fromEntries(Object.entries(s.workloads ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, { state: v.state, reason: v.reason ?? '' }])),
    conditions: (s.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message, lastTransitionTime: c.lastTransitionTime, observedGeneration: c.observedGeneration })),
  };
}

const REASONS: Record<string, string> = {
  E_NO_WORKLOADS: 'NoWorkloads',
  E_ABI_MISMATCH: 'AbiMismatch',
  E_MISSING_CRD: 'MissingCrd',
  E_NO_ISTIO: 'NoIstio',
  E_NOT_MANAGED: 'NotManaged',
  E_FORBIDDEN: 'Forbidden',
  E_CLUSTER_UNREACHABLE: 'ClusterUnreachable',
  E_CONFLICT: 'Conflict',
  E_REGISTRY_UNREACHABLE: 'RegistryUnreachable',
  E_REGISTRY_UNAVAILABLE: 'RegistryUnreachable',
  E_NOT_FOUND: 'ImageNotFound',
  E_LOGIN_REQUIRED: 'ImagePullDenied',
  E_CREDENTIALS_REJECTED: 'ImagePullDenied',
  E_DENIED: 'ImagePullDenied',
  E_BAD_IMAGE: 'NotAFilterImage',
};
