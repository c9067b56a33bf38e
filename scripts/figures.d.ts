/** Types for scripts/figures.js (plain JavaScript, run by npm run figures). */

/** What scripts/bench.js records in docs/figures/<bench>.json. */
export type FigureRecord = {
  bench: string;
  args: string[];
  measuredAt: string;
  /** The 1-minute load average as the run ended (absent in records made before it was kept). */
  loadAvg1m?: number;
  figures: Record<string, number | string>;
};

export const ROOT: string;
export const FIGURES_DIR: string;
export const TARGETS: string[];
export function readFigureFiles(dir?: string): FigureRecord[];
export function renderTable(records: FigureRecord[]): string;
export function markedSection(doc: string): string | null;
