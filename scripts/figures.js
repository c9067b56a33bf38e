#!/usr/bin/env node
'use strict';
/**
 * `npm run figures`: rewrites the figures table in README.md and docs/benchmarks.md (between
 * `<!-- figures:start -->` and `<!-- figures:end -->`) from docs/figures/<bench>.json, which
 * `npm run bench:<bench>` writes (scripts/bench.js). The table is never typed by hand:
 * test/unit/figures-table.test.ts fails when it and the JSON files disagree.
 * `npm run figures -- --check` only says whether they agree (exit 1 if not).
 */
const { existsSync, readdirSync, readFileSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const FIGURES_DIR = path.join(ROOT, 'docs', 'figures');
const START = '<!-- figures:start -->';
const END = '<!-- figures:end -->';
/** Files holding the generated table. */
const TARGETS = ['README.md', path.join('docs', 'benchmarks.md')];

/** Each bench's goals, as the issue tracker set them; a bench without one says so. */
const GOALS = {
  audit: '≥ 1,000 appends/s with 8 writers',
  status: 'ratio ≥ 0.5',
  lifecycles: 'ratio ≥ 0.8 of the ceiling; burst: every license expired; agent heartbeats cost 0 Temporal actions',
  revocation: 'every agent answered; fan-out p99 < 500 ms; storm p99 < 1 s',
};

/** What `bench.js` writes: `{ bench, args, measuredAt, loadAvg1m, figures }`. */
function readFigureFiles(dir = FIGURES_DIR) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')));
}

const formatValue = (v) =>
  typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 3 }) : String(v);

/** One Markdown row per recorded bench: every figure of its JSON line, in its order. */
function renderTable(records) {
  const lines = [
    '| bench | measured | figures (the JSON line, unedited) | goal |',
    '| ----- | -------- | --------------------------------- | ---- |',
  ];
  for (const r of records) {
    const figures = Object.entries(r.figures)
      .filter(([k]) => k !== 'bench')
      .map(([k, v]) => `\`${k}\` ${formatValue(v)}`)
      .join(', ');
    const options = r.args.length ? ` (\`-- ${r.args.join(' ')}\`)` : ' (defaults)';
    const load = r.loadAvg1m === undefined ? 'load not recorded' : `load ${r.loadAvg1m}`;
    lines.push(
      `| ${r.bench}${options} | ${r.measuredAt.slice(0, 16).replace('T', ' ')} UTC, ${load} | ${figures} | ${GOALS[r.bench] ?? 'none set'} |`,
    );
  }
  return lines.join('\n');
}

/** The text between the markers of `doc`, or null when it has none. */
function markedSection(doc) {
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) return null;
  return doc.slice(a + START.length, b).trim();
}

function withSection(doc, table) {
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`no ${START} … ${END} section`);
  return `${doc.slice(0, a + START.length)}\n\n${table}\n\n${doc.slice(b)}`;
}

function main(argv) {
  const table = renderTable(readFigureFiles());
  let stale = 0;
  for (const rel of TARGETS) {
    const file = path.join(ROOT, rel);
    const doc = readFileSync(file, 'utf8');
    if (markedSection(doc) === table) continue;
    if (argv.includes('--check')) {
      console.error(`${rel}: the figures table does not match docs/figures/*.json (run npm run figures)`);
      stale++;
    } else {
      writeFileSync(file, withSection(doc, table));
      console.log(`${rel}: figures table rewritten`);
    }
  }
  return stale ? 1 : 0;
}

module.exports = { readFigureFiles, renderTable, markedSection, TARGETS, FIGURES_DIR, ROOT };

if (require.main === module) process.exit(main(process.argv.slice(2)));
