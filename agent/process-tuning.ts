/**
 * How an agent process is started, for a small, steady footprint: an update streams a ~50 MB
 * release (its own Node included) through TLS, gunzip and hashing, and each step leaves short-lived
 * buffers behind. A 1 MB young generation collects them sooner, and glibc hands freed blocks above
 * 128 KiB back to the system at once instead of keeping them for reuse. Measured with
 * `npm run bench:update`: the updating agent's peak RSS went from 118–134 MB to 100–105 MB.
 * The systemd unit (`Environment=`, `ExecStart`), the launcher starting a release, and the tests
 * and benchmarks running `agentina-agent run` all start it this way.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** Read by glibc when the process starts, so they are set on the process, never at run time. */
export const AGENT_PROCESS_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};
