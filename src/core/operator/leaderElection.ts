import type { Cluster } from '../deploy/cluster';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** How long a lease holds without renewal (Kubernetes' default for controllers: 15 s). */
  leaseDurationMs: number;
  /** How often the holder renews, and others try. */
  retryMs: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * Leader election through a coordination.k8s.io Lease, as client-go does it: take the lease when it is free
 * or expired, renew it while holding it, and stop leading as soon as a renewal cannot be made before the
 * lease would expire. Writes carry the resourceVersion read, so two candidates never both win.
 */
export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenewed = 0;
  private stopped = false;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: LeaderElectionOptions,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    this.inFlight = this.tick();
  }

  /** Stops; a leader gives the lease up (so a successor need not wait for it to expire). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A renewal under way finishes first: it must not make this replica leader again after the stop.
    await this.inFlight;
    if (this.leading) this.setLeading(false);
    // Whether or not it was leading when told to stop, a lease this replica holds is given up.
    await this.release().catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => (this.inFlight = this.tick()), this.options.retryMs);
    this.timer.unref?.();
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.options.log?.('info', leading ? 'became the leader' : 'stopped leading', { lease: `${this.options.namespace}/${this.options.name}`, identity: this.options.identity });
    if (leading) this.options.onStartedLeading();
    else this.options.onStoppedLeading();
  }

  private async tick(): Promise<void> {
    try {
      const won = await this.tryAcquireOrRenew();
      if (this.stopped) return;
      if (won) this.lastRenewed = Date.now();
      if (won) this.setLeading(true);
      else if (this.leading) this.setLeading(false);
    } catch (err) {
      this.options.log?.('warn', 'lease renewal failed', { error: (err as Error).message });
      // A leader that cannot renew before its lease runs out must stop: another may take it then.
      if (this.leading && Date.now() - this.lastRenewed > this.options.leaseDurationMs - this.options.retryMs) this.setLeading(false);
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const api = this.cluster.coordination;
    const now = new Date();
    const durationSeconds = Math.max(1, Math.round(this.options.leaseDurationMs / 1000));
    const existing = await this.cluster.find({ verb: 'get', resource: 'leases', namespace, name }, () => api.readNamespacedLease({ name, namespace }));
    if (!existing) {
      try {
        await this.cluster.call({ verb: 'create', resource: 'leases', namespace }, () =>
          api.createNamespacedLease({
            namespace,
            body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
          }),
        );
        return true;
      } catch (err) {
        if ((err as { status?: number }).status === 409) return false; // another candidate created it first
        throw err;
      }
    }
    const spec = existing.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = !holder || renewed + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 < now.getTime();
    if (holder !== identity && !expired) return false;
    const body = {
      ...existing,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        ...(holder !== identity ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    };
    try {
      await this.cluster.call({ verb: 'update', resource: 'leases', namespace, name }, () => api.replaceNamespacedLease({ name, namespace, body }));
      return true;
    } catch (err) {
      if ((err as { status?: number }).status === 409) return false; // someone else wrote it since we read it
      throw err;
    }
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    const api = this.cluster.coordination;
    const existing = await api.readNamespacedLease({ name, namespace });
    if (existing.spec?.holderIdentity !== identity) return;
    await api.replaceNamespacedLease({ name, namespace, body: { ...existing, spec: { ...existing.spec, holderIdentity: '', renewTime: new Date(0) } } });
  }
}
