import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatAge, formatSize, formatTable, formatUpdated } from '../../src/core/format';

describe('formatting', () => {
  it('prints sizes in SI units with four significant digits, like wasme', () => {
    assert.equal(formatSize(0), '0 B');
    assert.equal(formatSize(999), '999 B');
    assert.equal(formatSize(12600), '12.6 kB');
    assert.equal(formatSize(31592), '31.59 kB');
    assert.equal(formatSize(1_234_567), '1.235 MB');
    assert.equal(formatSize(5_000_000_000), '5 GB');
  });

  it('prints UPDATED in wasme\'s RFC822 shape, in UTC', () => {
    assert.equal(formatUpdated(new Date('2026-11-25T02:39:07Z')), '25 Nov 26 02:39 UTC');
    assert.equal(formatUpdated(undefined), '-');
  });

  it('says how old something is', () => {
    const now = new Date('2026-11-25T12:00:00Z');
    assert.equal(formatAge(new Date('2026-11-25T11:59:58Z'), now), 'just now');
    assert.equal(formatAge(new Date('2026-11-25T11:57:00Z'), now), '3 minutes ago');
    assert.equal(formatAge(new Date('2026-11-24T12:00:00Z'), now), '1 day ago');
  });

  it('aligns table columns', () => {
    const table = formatTable(['NAME', 'TAG'], [['webassemblyhub.io/a/b', 'v1'], ['x', 'latest']]);
    assert.equal(table, ['NAME'.padEnd(21) + '  TAG', 'webassemblyhub.io/a/b  v1', 'x'.padEnd(21) + '  latest'].join('\n'));
  });
});
