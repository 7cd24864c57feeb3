import type { AbiVersion } from './wasm/abi';
import { UserError } from './errors';

export type PlatformName = 'istio' | 'envoy' | 'gloo';

export interface PlatformVersion {
  version: string;
  /** The proxy-wasm ABI versions this platform's proxy loads. */
  abis: AbiVersion[];
  note?: string;
}

/**
 * Which ABI each platform version runs. wasme offered Istio 1.5–1.9 and Gloo 1.3/1.5/1.6; Istio ≥1.10
 * ships an Envoy whose proxy-wasm host accepts 0.1.0, 0.2.0 and 0.2.1.
 */
const MODERN: AbiVersion[] = ['0.1.0', '0.2.0', '0.2.1'];
export const PLATFORMS: Record<PlatformName, PlatformVersion[]> = {
  istio: [
    ...['1.28.x', '1.27.x', '1.26.x', '1.25.x', '1.24.x', '1.23.x', '1.22.x', '1.21.x', '1.20.x'].map((version) => ({
      version,
      abis: MODERN,
    })),
    ...['1.19.x', '1.18.x', '1.17.x', '1.16.x', '1.15.x', '1.14.x', '1.13.x', '1.12.x', '1.11.x', '1.10.x'].map((version) => ({
      version,
      abis: MODERN,
      note: 'end of life',
    })),
    ...['1.9.x', '1.8.x', '1.7.x'].map((version) => ({ version, abis: ['0.2.0'] as AbiVersion[], note: 'wasme era' })),
    ...['1.6.x', '1.5.x'].map((version) => ({ version, abis: ['0.1.0'] as AbiVersion[], note: 'wasme era' })),
  ],
  envoy: ['1.36.x', '1.35.x', '1.34.x', '1.33.x', '1.32.x', '1.31.x', '1.30.x', '1.29.x', '1.28.x'].map((version) => ({
    version,
    abis: MODERN,
  })),
  gloo: [
    { version: '1.6.x', abis: ['0.2.1'], note: 'wasme era' },
    { version: '1.5.x', abis: ['0.2.0'], note: 'wasme era' },
    { version: '1.3.x', abis: ['0.1.0'], note: 'wasme era' },
  ],
};

export const PLATFORM_NAMES = Object.keys(PLATFORMS) as PlatformName[];

export function defaultPlatformVersion(platform: PlatformName): string {
  return PLATFORMS[platform][0]!.version;
}

export function findPlatformVersion(platform: string, version: string): PlatformVersion {
  if (!(platform in PLATFORMS)) {
    throw new UserError(`Unknown platform "${platform}".`, `Choose one of: ${PLATFORM_NAMES.join(', ')}.`, 'E_BAD_PLATFORM');
  }
  const versions = PLATFORMS[platform as PlatformName];
  // Accept "1.9", "1.9.x" and "1.9.3" for the 1.9.x line.
  const minor = version.trim().replace(/^v/, '').split('.').slice(0, 2).join('.');
  const found = versions.find((v) => v.version === `${minor}.x`);
  if (!found) {
    throw new UserError(
      `${platform} ${version} is not a platform version this tool knows.`,
      `Known ${platform} versions: ${versions.map((v) => v.version).join(', ')}.`,
      'E_BAD_PLATFORM_VERSION',
    );
  }
  return found;
}
