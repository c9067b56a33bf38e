import { readFileSync } from 'node:fs';
import path from 'node:path';
import { markedSection, readFigureFiles, renderTable, ROOT, TARGETS } from '../../scripts/figures';

/**
 * The figures table in README.md and docs/benchmarks.md is generated (npm run figures) from the
 * JSON lines the benches recorded in docs/figures/; a table edited by hand, or a bench re-run
 * without regenerating it, fails here.
 */
describe('the figures table', () => {
  const records = readFigureFiles();

  it.each(TARGETS)('%s holds exactly the table rendered from docs/figures/*.json', (rel) => {
    const doc = readFileSync(path.join(ROOT, rel), 'utf8');
    expect(markedSection(doc)).toBe(renderTable(records));
  });

  it('every record is a bench run: its name, options, date and figures line', () => {
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) {
      // Most benches name themselves in their line; a line that does not is filed under the bench that printed it.
      expect([undefined, r.bench]).toContain(r.figures.bench);
      expect(Array.isArray(r.args)).toBe(true);
      expect(Number.isNaN(Date.parse(r.measuredAt))).toBe(false);
    }
  });

  it('a figure that changes changes the table, so a stale table cannot pass', () => {
    const edited = structuredClone(records);
    const r = edited[0]!;
    const key = Object.keys(r.figures).find((k) => typeof r.figures[k] === 'number')!;
    r.figures[key] = (r.figures[key] as number) + 1;
    expect(renderTable(edited)).not.toBe(renderTable(records));
  });
});
