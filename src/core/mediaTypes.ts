/** Media types and annotation keys of the wasm filter image formats (wasme "oci" and Istio "compat"). */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerLayerTarGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  wasmConfig: 'application/vnd.module.wasm.config.v1+json',
  wasmLayer: 'application/vnd.module.wasm.content.layer.v1+wasm',
} as const;

export const Annotation = {
  title: 'org.opencontainers.image.title',
  created: 'org.opencontainers.image.created',
  refName: 'org.opencontainers.image.ref.name',
  abiVersion: 'module.wasm.runtime/abi_version',
  runtimeType: 'module.wasm.runtime/type',
  variant: 'module.wasm.image/variant',
  /** When the local store entry was last written (wasme's UPDATED column). */
  storeUpdated: 'dev.wasm-filter-studio.updated',
} as const;

export const RUNTIME_CONFIG_FILE = 'runtime-config.json';
export const OCI_WASM_FILE = 'filter.wasm';
export const COMPAT_WASM_FILE = 'plugin.wasm';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}
