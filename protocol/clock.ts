/** Time as a dependency, so tests can move it and production code never calls Date.now() directly. */
export type Clock = { now(): Date };

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to; for tests. */
export function createFixedClock(start: Date): Clock & { set(d: Date): void; advance(ms: number): void } {
  let t = start.getTime();
  return {
    now: () => new Date(t),
    set: (d) => void (t = d.getTime()),
    advance: (ms) => void (t += ms),
  };
}
