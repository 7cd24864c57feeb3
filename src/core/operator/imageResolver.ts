import type { Cluster } from '../deploy/cluster';
import { resolveRemoteImage, type ImageForDeploy } from '../deploy/deployImage';
import { parseReference } from '../reference';
import { DockerAuthsCredentials } from '../registry/credentials';
import { RegistryClient } from '../registry/registryClient';
import type { FilterDeploymentTarget } from './filterDeployment';

/**
 * Reads what a deploy needs of an image from its registry, with the FilterDeployment's pull secret and
 * options. A digest reference never changes, so it is kept; a tag is looked up again after `tagTtlMs`
 * (so a pushed build is picked up), and a thousand FilterDeployments of one image cost one lookup.
 */
export class ImageResolver {
  private readonly cache = new Map<string, { at: number; facts: Promise<ImageForDeploy> }>();
  /** Registry lookups made (for metrics and benchmarks). */
  lookups = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: { tagTtlMs: number; attempts?: number; timeoutMs?: number } = { tagTtlMs: 30_000 },
  ) {}

  resolve(t: FilterDeploymentTarget): Promise<ImageForDeploy> {
    const key = [t.namespace, t.image, t.pullSecret ?? '', t.plainHttp ?? '', t.insecureSkipVerify].join('|');
    const hit = this.cache.get(key);
    const pinned = !!parseReference(t.image).digest;
    if (hit && (pinned || Date.now() - hit.at < this.options.tagTtlMs)) return hit.facts;
    const facts = this.lookUp(t);
    this.cache.set(key, { at: Date.now(), facts });
    facts.catch(() => this.cache.delete(key)); // a failure is not remembered: the retry looks again
    return facts;
  }

  private async lookUp(t: FilterDeploymentTarget): Promise<ImageForDeploy> {
    this.lookups++;
    const ref = parseReference(t.image);
    let credentials: DockerAuthsCredentials | undefined;
    if (t.pullSecret) {
      const secret = await this.cluster.call({ verb: 'get', resource: 'secrets', namespace: t.namespace, name: t.pullSecret }, () =>
        this.cluster.core.readNamespacedSecret({ name: t.pullSecret!, namespace: t.namespace }),
      );
      const data = secret.data?.['.dockerconfigjson'] ?? secret.data?.['.dockercfg'];
      const parsed = data ? JSON.parse(Buffer.from(data, 'base64').toString('utf8')) : {};
      credentials = new DockerAuthsCredentials(parsed.auths ? parsed : { auths: parsed }, `Secret ${t.namespace}/${t.pullSecret}`);
    }
    const client = new RegistryClient(ref.registry, {
      ...(credentials ? { credentials } : {}),
      ...(t.plainHttp !== undefined ? { plainHttp: t.plainHttp } : {}),
      ...(t.insecureSkipVerify ? { insecure: true } : {}),
      // The work queue retries with its own backoff; one quick attempt here keeps a worker from hanging.
      attempts: this.options.attempts ?? 1,
      ...(this.options.timeoutMs ? { timeoutMs: this.options.timeoutMs } : {}),
    });
    return resolveRemoteImage(t.image, client);
  }
}
