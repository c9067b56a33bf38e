import { api } from '../api';
import { h } from '../dom';
import type { RouteContext } from '../shell';
import { page } from '../shell';
import type { Agent, Page, Release } from '../types';
import { badge, code, confirmByName, form, input, section, table, time } from '../ui';
import { can } from './access';

/** How many agents the first page of the agent list shows per reported version (and update outcome). */
function countByVersion(agents: Agent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of agents) if (a.agentVersion) counts.set(a.agentVersion, (counts.get(a.agentVersion) ?? 0) + 1);
  return counts;
}

/** Withdraws one published version, once its version is typed in full (like revoking a license). */
function yankForm(r: Release, done: () => void): HTMLElement {
  return h(
    'details',
    { class: 'yank' },
    h('summary', {}, 'Yank…'),
    form(
      {
        submit: 'Yank',
        label: `Yank ${r.version}`,
        class: 'form danger',
        action: async (v) => {
          await api('POST', `/v1/admin/releases/${encodeURIComponent(r.version)}/yank`, {
            ...(v.reason ? { reason: v.reason } : {}),
          });
          done();
        },
      },
      input('Reason (kept in the audit)', { name: 'reason', maxlength: 500 }),
      confirmByName(
        'version',
        r.version,
        'No agent is offered it again (agents already running it keep it until a newer release).',
      ),
    ),
  );
}

/** #/releases: every published version, whether it is yanked, how many agents run it, and yank. */
export async function releasesView(ctx: RouteContext): Promise<Node> {
  const [releases, agents] = await Promise.all([
    api<{ items: Release[] }>('GET', '/v1/admin/releases?limit=200'),
    api<Page<Agent>>('GET', '/v1/admin/agents?limit=200'),
  ]);
  const running = countByVersion(agents.items);
  const frozen = agents.items.filter((a) => a.update?.reason === 'frozen');
  const columns = [
    { label: 'Version', cell: (r: Release) => code(r.version) },
    { label: 'State', cell: (r: Release) => badge(r.yankedAt ? 'yanked' : 'published') },
    { label: 'Agents running it', cell: (r: Release) => String(running.get(r.version) ?? 0) },
    { label: 'Published', cell: (r: Release) => time(r.createdAt) },
    { label: 'Yanked', cell: (r: Release) => time(r.yankedAt) },
    { label: 'Target', cell: (r: Release) => (r.tarballTarget ? code(r.tarballTarget) : '— (manifest only)') },
    { label: 'Runtime hash', cell: (r: Release) => h('code', { class: 'clip', title: r.runtimeHash }, r.runtimeHash) },
    ...(can(ctx.me, 'releases:write')
      ? [{ label: 'Actions', cell: (r: Release) => (r.yankedAt ? '' : yankForm(r, () => ctx.refresh())) }]
      : []),
  ];
  return page(
    'Releases',
    h(
      'p',
      {},
      'Signed releases in the TUF repository (',
      code('/v1/dist'),
      '). Publish with ',
      code('agentina release publish'),
      '; yank here or with ',
      code('agentina release yank'),
      '.',
    ),
    table(columns, releases.items, 'No release has been published.', 'Releases'),
    section(
      'Update reports',
      agents.items.length >= 200 ? h('p', {}, 'Counts cover the first 200 agents.') : '',
      frozen.length
        ? h(
            'p',
            { class: 'notice bad', role: 'status' },
            `${frozen.length} agent(s) report a frozen repository: the timestamp expired (is the agentina-tuf-timestamp schedule paused?).`,
          )
        : h('p', {}, 'No agent reports a frozen repository.'),
    ),
  );
}
