import { findPlatformVersion } from '../platforms';
import { abiFromRuntimeName } from '../wasm/abi';

/**
 * Whether an image's ABI versions (runtime-config names, wasme's or ours) load in this Istio version.
 * Unknown Istio versions (newer than the table) are assumed modern; unknown ABI names are not judged.
 */
export function abiSupportsIstio(abiVersions: string[], istioVersion: string): boolean {
  const abis = abiVersions.map(abiFromRuntimeName).filter((a) => a !== undefined);
  if (!abis.length) return true;
  let supported: string[];
  try {
    supported = findPlatformVersion('istio', istioVersion).abis;
  } catch {
    const minor = Number(/^1\.(\d+)/.exec(istioVersion)?.[1] ?? NaN);
    supported = Number.isFinite(minor) && minor < 5 ? [] : ['0.1.0', '0.2.0', '0.2.1'];
  }
  return abis.some((a) => supported.includes(a));
}
