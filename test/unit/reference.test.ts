import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { familiarReference, formatReference, parseReference } from '../../src/core/reference';
import { UserError } from '../../src/core/errors';

describe('image references', () => {
  it('puts names without a registry on WebAssembly Hub with tag latest, as wasme did', () => {
    assert.deepEqual(parseReference('alice/add-header'), { registry: 'webassemblyhub.io', repository: 'alice/add-header', tag: 'latest' });
    assert.equal(formatReference(parseReference('alice/add-header:v1')), 'webassemblyhub.io/alice/add-header:v1');
    assert.equal(familiarReference(parseReference('webassemblyhub.io/alice/add-header:v1')), 'alice/add-header:v1');
  });

  it('recognises registries by a dot, a port or localhost', () => {
    assert.equal(parseReference('localhost:5000/f:1').registry, 'localhost:5000');
    assert.equal(parseReference('localhost/f').registry, 'localhost');
    assert.equal(parseReference('ghcr.example.com/org/team/f:2').repository, 'org/team/f');
    assert.equal(parseReference('127.0.0.1:5000/f').registry, '127.0.0.1:5000');
    assert.equal(parseReference('[::1]:5000/f').registry, '[::1]:5000');
    // "alice" has no dot or port: it is a repository component, not a host.
    assert.equal(parseReference('alice/f').registry, 'webassemblyhub.io');
  });

  it('keeps digests and tags together', () => {
    const digest = 'sha256:' + 'a'.repeat(64);
    const ref = parseReference(`r.example/f:v1@${digest}`);
    assert.equal(ref.tag, 'v1');
    assert.equal(ref.digest, digest);
    assert.equal(parseReference(`r.example/f@${digest}`).tag, undefined);
    assert.equal(formatReference(ref), `r.example/f:v1@${digest}`);
  });

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['Alice/Filter:v1', /lowercase/],
    ['alice/filter:-v1', /tag "-v1"/],
    ['alice//filter', /empty name component/],
    ['alice/filter@sha256:123', /not a digest/],
    ['alice/fil ter', /white space/],
    ['alice/filter:' + 'x'.repeat(129), /tag/],
    ['bad_host:99999x/f', /port/],
    ['a/' + 'b'.repeat(300), /longer than 255/],
    ['alice/-filter', /not a valid name component/],
  ];
  for (const [input, why] of bad) {
    it(`rejects ${JSON.stringify(input.slice(0, 40))} with a reason and an example`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => err instanceof UserError && why.test(err.message) && !!err.hint && err.code === 'E_BAD_REFERENCE',
      );
    });
  }
});
