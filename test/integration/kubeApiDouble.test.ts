import assert from 'node:assert/strict';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { loadK8s } from '../../src/core/deploy/cluster';
import { tempDir, until } from '../helpers/env';
import { KubeApiDouble, seedBookinfo } from '../helpers/kubeApi';

/**
 * The API double behaves like the API server where the operator relies on it: the real client's informer
 * lists, watches, resumes from a resourceVersion after a dropped stream, re-lists after 410 Gone, and
 * follows bookmarks; finalizers, ownerReferences, the status subresource and log follow work as Kubernetes'.
 */
describe('Kubernetes API double, through the real client', () => {
  let api: KubeApiDouble;
  let kubeconfig: string;
  before(async () => {
    api = await new KubeApiDouble().start();
    seedBookinfo(api, { istioVersion: '1.8.1', filterDeployment: true });
    kubeconfig = api.writeKubeconfig(path.join(tempDir('wfs-double-'), 'kubeconfig'));
  });
  after(() => api.stop());

  async function client() {
    const k8s = await loadK8s();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    return { k8s, kc, core: kc.makeApiClient(k8s.CoreV1Api) };
  }

  it('an informer lists, then sees adds, changes and deletes; resumes after a dropped stream; re-lists after 410', async () => {
    const { k8s, kc, core } = await client();
    const events: string[] = [];
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces/bookinfo/configmaps', () => core.listNamespacedConfigMap({ namespace: 'bookinfo' }));
    informer.on('add', (o) => events.push(`add ${o.metadata!.name}`));
    informer.on('update', (o) => events.push(`update ${o.metadata!.name} ${o.data?.v}`));
    informer.on('delete', (o) => events.push(`delete ${o.metadata!.name}`));
    informer.on('error', (e) => events.push(`error ${String(e)}`));
    await core.createNamespacedConfigMap({ namespace: 'bookinfo', body: { metadata: { name: 'before' }, data: { v: '0' } } });
    await informer.start();
    await until('the listed object', () => events.includes('add before'));
    await core.createNamespacedConfigMap({ namespace: 'bookinfo', body: { metadata: { name: 'a' }, data: { v: '1' } } });
    await core.replaceNamespacedConfigMap({ name: 'a', namespace: 'bookinfo', body: { metadata: { name: 'a' }, data: { v: '2' } } });
    await until('add and update', () => events.includes('update a 2'));
    const lists = () => api.requests.filter((r) => r.path === '/api/v1/namespaces/bookinfo/configmaps' && !r.query.includes('watch')).length;
    const listed = lists();

    // A dropped stream: the informer watches again from where it was, and misses nothing done meanwhile.
    api.closeWatches();
    await core.deleteNamespacedConfigMap({ name: 'a', namespace: 'bookinfo' });
    await until('the delete made while the stream was down', () => events.includes('delete a'));
    assert.equal(lists(), listed, 'resumed from its resourceVersion, no re-list');

    // The stream drops, a change is made, and history is compacted before the informer is back (all in one
    // tick): resuming is refused with 410 Gone, and the informer lists again.
    api.closeWatches();
    api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b', namespace: 'bookinfo' }, data: { v: '3' } });
    api.compact();
    await until('the object created across the 410', () => events.includes('add b'));
    assert.equal(lists(), listed + 1, 'one re-list after 410 Gone');
    assert.ok(!events.some((e) => e.startsWith('error')), events.join('\n'));
    await informer.stop();
    await until('the watch closed', () => api.openWatches === 0);
  });

  it('sends bookmarks to watches that allow them, carrying the current resourceVersion', async () => {
    const { k8s, kc } = await client();
    api.bookmarkEveryMs = 50;
    const seen: { type: string; rv?: string }[] = [];
    const watch = new k8s.Watch(kc);
    const req = await watch.watch('/api/v1/namespaces/bookinfo/pods', { allowWatchBookmarks: true }, (type, obj) => seen.push({ type, rv: obj?.metadata?.resourceVersion }), () => undefined);
    const bookmark = await until('a bookmark', () => seen.find((e) => e.type === 'BOOKMARK'));
    req.abort();
    assert.ok(Number(bookmark.rv) >= Math.max(...seen.filter((e) => e.type === 'ADDED').map((e) => Number(e.rv))), 'no older than what was sent');
    api.bookmarkEveryMs = 60_000;
    assert.ok(seen.filter((e) => e.type === 'ADDED').length >= 6, 'the current pods first');
  });

  it('finalizers hold a delete, ownerReferences take dependents along, status is its own subresource', async () => {
    const { core } = await client();
    const owner = await core.createNamespacedConfigMap({ namespace: 'bookinfo', body: { metadata: { name: 'owner', finalizers: ['studio/cleanup'] } } });
    await core.createNamespacedConfigMap({
      namespace: 'bookinfo',
      body: { metadata: { name: 'owned', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }] } },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: 'bookinfo' });
    const marked = await core.readNamespacedConfigMap({ name: 'owner', namespace: 'bookinfo' });
    assert.ok(marked.metadata!.deletionTimestamp, 'marked for deletion, still there');
    assert.ok(api.get('v1', 'ConfigMap', 'bookinfo', 'owned'), 'the dependent stays while the owner does');
    await core.replaceNamespacedConfigMap({ name: 'owner', namespace: 'bookinfo', body: { ...marked, metadata: { ...marked.metadata, finalizers: [] } } });
    assert.equal(api.get('v1', 'ConfigMap', 'bookinfo', 'owner'), undefined, 'gone once the finalizer is removed');
    assert.equal(api.get('v1', 'ConfigMap', 'bookinfo', 'owned'), undefined, 'and its dependent with it');

    const fd = { apiVersion: 'wasme.io/v1', kind: 'FilterDeployment', metadata: { name: 'f', namespace: 'bookinfo' }, spec: { filter: { id: 'f', image: 'x/y:z' } } };
    const crd = api.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, 'filterdeployments.wasme.io')!;
    api.put({ ...crd, spec: { ...crd.spec, versions: crd.spec.versions.map((v: object) => ({ ...v, subresources: { status: {} } })) } });
    api.put(fd);
    const { kc, k8s } = await client();
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const patchOptions = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    await custom.patchNamespacedCustomObject({ group: 'wasme.io', version: 'v1', namespace: 'bookinfo', plural: 'filterdeployments', name: 'f', body: { spec: { filter: { id: 'f', image: 'x/y:2' } }, status: { observedGeneration: 9 } } }, patchOptions);
    let stored = api.get('wasme.io/v1', 'FilterDeployment', 'bookinfo', 'f')!;
    assert.equal(stored.metadata.generation, 2, 'a spec change is a new generation');
    assert.equal(stored.status, undefined, 'the main resource does not write status');
    await custom.patchNamespacedCustomObjectStatus({ group: 'wasme.io', version: 'v1', namespace: 'bookinfo', plural: 'filterdeployments', name: 'f', body: { status: { observedGeneration: 2 } } }, patchOptions);
    stored = api.get('wasme.io/v1', 'FilterDeployment', 'bookinfo', 'f')!;
    assert.deepEqual(stored.status, { observedGeneration: 2 });
    assert.equal(stored.metadata.generation, 2, 'a status write is not a new generation');
  });

  it('follows a pod log: what is there, then new lines as they are written', async () => {
    const { k8s, kc } = await client();
    const pod = api.list('v1', 'Pod', 'bookinfo')[0]!.metadata.name;
    api.addLog('bookinfo', pod, 'istio-proxy', 'first line');
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString()));
    const req = await new k8s.Log(kc).log('bookinfo', pod, 'istio-proxy', stream, { follow: true });
    await until('the existing line', () => text.includes('first line'));
    api.addLog('bookinfo', pod, 'istio-proxy', 'second line');
    await until('the new line', () => text.includes('second line'));
    req.abort();
  });
});
