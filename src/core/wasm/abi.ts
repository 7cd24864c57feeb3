/**
 * The proxy-wasm ABI versions a module can declare, and how wasme and Istio named them.
 * A module declares its ABI by exporting a function `proxy_abi_version_X_Y_Z`.
 */
export type AbiVersion = '0.1.0' | '0.2.0' | '0.2.1';

export const ABI_EXPORTS: Record<string, AbiVersion> = {
  proxy_abi_version_0_1_0: '0.1.0',
  proxy_abi_version_0_2_0: '0.2.0',
  proxy_abi_version_0_2_1: '0.2.1',
};

/**
 * wasme's runtime-config named ABIs by the Envoy commit that introduced them; Istio 1.5–1.9 images
 * carry these names, so an image records both the wasme name (where one exists) and the version.
 */
const WASME_ABI_NAMES: Record<AbiVersion, string | undefined> = {
  '0.1.0': 'v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f',
  '0.2.0': 'v0-4689a30309abf31aee9ae36e73d34b1bb182685f',
  '0.2.1': undefined,
};

/** The `abiVersions` an image built from a module of this ABI declares. */
export function runtimeAbiNames(abi: AbiVersion): string[] {
  const wasmeName = WASME_ABI_NAMES[abi];
  return wasmeName ? [wasmeName, `v${abi}`] : [`v${abi}`];
}

/** Reads either naming back into an ABI version (undefined for names this tool does not know). */
export function abiFromRuntimeName(name: string): AbiVersion | undefined {
  for (const [abi, wasmeName] of Object.entries(WASME_ABI_NAMES)) {
    if (name === wasmeName || name === `v${abi}` || name === abi) return abi as AbiVersion;
  }
  return undefined;
}
