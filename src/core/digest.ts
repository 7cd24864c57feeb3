import { createHash } from 'node:crypto';
import { UserError } from './errors';

/** `sha256:<64 hex>`, the only algorithm this tool writes (and the one registries must accept). */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function sha256Digest(data: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

export function parseDigest(value: string): Digest {
  if (!isDigest(value)) {
    throw new UserError(
      `"${value}" is not a valid digest.`,
      'A digest is "sha256:" followed by 64 lowercase hex characters.',
      'E_BAD_DIGEST',
    );
  }
  return value;
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** The short form wasme showed in its SHA column: the first 8 hex characters. */
export function shortDigest(digest: Digest): string {
  return digestHex(digest).slice(0, 8);
}
