// The ext2fs package (libext2fs in WASM) ships no types: the one entry point we use.
declare module 'ext2fs' {
  export function withMountedDisk<T>(
    disk: import('file-disk').Disk,
    offset: number,
    fn: (fs: { promises: never }) => Promise<T>,
  ): Promise<T>;
}
