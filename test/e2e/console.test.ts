import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createAdmin } from '../../cli/create-admin';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { newId } from '../../protocol';
import { ROOT } from '../../scripts/stack/tools';
import { createAgent, createCustomer, createLicense } from '../support/agent-server-fixtures';
import { testServices } from '../support/app';
import { uniqueEmail } from '../support/identity';
import { createPageTracker, pageApi, startWebStack, textOf, type WebStack } from '../support/web-stack';

/** The operator's console in Chromium: the overview, a license's story, the audit log, the tasks table. */
const SCREENSHOTS = path.join(ROOT, '.data', 'screenshots');

describe('admin console (browser)', () => {
  let stack: WebStack;
  const email = uniqueEmail('console-admin');
  const password = 'a long and careful console password';
  const pages = createPageTracker(() => stack);

  beforeAll(async () => {
    stack = await startWebStack('e2econsole');
    const admin = await createAdmin(testServices({ pool: stack.db.pool }).identity.accounts, { email, password });
    await stack.db.pool.query(`UPDATE admins SET display_name = 'Casey Console' WHERE email = $1`, [admin.email]);
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  afterAll(async () => {
    await pages.closeAll();
    await stack?.close();
  });

  afterEach(() => {
    expect(pages.problems.splice(0)).toEqual([]);
  });

  async function signIn(hash = ''): Promise<Page> {
    const page = await pages.newPage();
    await page.goto(`${stack.baseUrl}/${hash}`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('whoami').waitFor();
    return page;
  }

  /** A full-page screenshot, saved as a test artifact under .data/screenshots. */
  async function shoot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  it('lands on the overview: licenses per state, what ends soon, agents per status, each linking to its list', async () => {
    const pool = stack.db.pool;
    const customerId = await createCustomer(pool);
    const licenseId = await createLicense(pool, customerId);
    await createLicense(pool, customerId, { state: 'suspended' });
    const quarantined = await createAgent(pool, licenseId, customerId);
    await createAgent(pool, licenseId, customerId);
    await pool.query(`UPDATE agents SET status = 'quarantined', status_reason = 'fingerprint_mismatch' WHERE id = $1`, [
      quarantined.agentId,
    ]);

    const page = await signIn();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    expect(
      await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).getAttribute('aria-current'),
    ).toBe('page');
    expect(await textOf(page.getByTestId('tile-suspended'))).toMatch(/^1\s*suspended$/);
    // The license ends in 30 days: it is listed with its customer's name.
    await page.getByRole('table', { name: 'Licenses ending soon' }).getByRole('link', { name: licenseId }).waitFor();
    await shoot(page, 'overview');

    await page.getByTestId('tile-quarantined').click();
    await page.waitForURL(/#\/agents\?status=quarantined/);
    await page.getByRole('heading', { name: 'Agents', level: 1 }).waitFor();
    await page.getByText(quarantined.agentId).first().waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);
  });

  it("tells a license's story: transitions with who and why, its agents' quarantines, where its agents stand", async () => {
    const page = await signIn();
    const call = pageApi(page);
    const customer = (await call('POST', '/v1/admin/customers', { name: 'Story Robotics' })) as { id: string };
    const { license } = (await call('POST', '/v1/admin/licenses', {
      customerId: customer.id,
      plan: 'enterprise',
      maxAgents: 2,
      term: { days: 90 },
    })) as { license: { id: string } };
    await call('POST', `/v1/admin/licenses/${license.id}/suspend`, { reason: 'invoice 1042 overdue' });
    await call('POST', `/v1/admin/licenses/${license.id}/resume`, {});
    const agent = await createAgent(stack.db.pool, license.id, customer.id);
    await stack.db.pool.query(`UPDATE agents SET hostname_hint = 'build-7' WHERE id = $1`, [agent.agentId]);
    await withTransaction(stack.db.pool, (tx) =>
      appendAudit(tx, {
        actor: { kind: 'workflow', id: `agent/${agent.agentId}` },
        action: 'agent.quarantined',
        subject: { kind: 'agent', id: agent.agentId },
        data: { licenseId: license.id, reason: 'fingerprint_mismatch' },
      }),
    );

    await page.goto(`${stack.baseUrl}/#/licenses/${license.id}`);
    const timeline = page.getByRole('list', { name: 'License timeline' });
    await timeline.locator('li').first().waitFor();
    const actions = await timeline.locator('li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-action')));
    expect(actions).toEqual(['agent.quarantined', 'license.resumed', 'license.suspended', 'license.created']);
    const suspended = timeline.locator('li[data-action="license.suspended"]');
    expect(await textOf(suspended)).toContain('Casey Console <');
    expect(await textOf(suspended)).toContain('invoice 1042 overdue');
    const quarantined = timeline.locator('li[data-action="agent.quarantined"]');
    expect(await textOf(quarantined)).toContain('build-7');
    expect(await textOf(quarantined)).toContain('fingerprint_mismatch');
    await page.getByRole('table', { name: 'Agents of this license' }).getByText('build-7').waitFor();
    await shoot(page, 'license');
  });

  it('shows the audit log readably (names, fields, one-line dates), filters with chips, and downloads what it shows', async () => {
    const page = await signIn();
    const created = (await pageApi(page)('POST', '/v1/admin/customers', { name: 'Ledger & Sons' })) as { id: string };
    await page.getByRole('navigation').getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Action').selectOption('customer.created');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/action=customer.created/);
    const row = page.getByRole('row').filter({ hasText: 'Ledger & Sons' });
    // The actor by name and email (the id on hover), not a raw id.
    expect(await textOf(row.locator('td').nth(2))).toContain(`Casey Console <${email}>`);
    expect(await row.locator('td').nth(2).locator('[title]').first().getAttribute('title')).toMatch(/^admin adm_/);
    // Data as labelled fields; the date on one line.
    expect(await textOf(row.locator('td').nth(5).locator('dl'))).toContain('nameLedger & Sons');
    const when = row.locator('td').nth(1);
    // An inline element that wraps has one client rect per line.
    const lines = await when.locator('time').evaluate((t) => t.getClientRects().length);
    expect(lines).toBe(1);
    await shoot(page, 'audit');

    // Each filter in force is a chip that removes it.
    const chips = page.getByRole('list', { name: 'Filters in force' });
    await chips.getByRole('link', { name: 'Remove filter action: customer.created' }).waitFor();

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^agentina-audit-.*\.csv$/);
    const csv = await readFile(await download.path(), 'utf8');
    expect(csv.split('\r\n')[0]).toMatch(/^seq,time,actor_kind,actor_id,actor_name,action,/);
    expect(csv).toContain(created.id);
    expect(csv).not.toContain('session.created');

    await chips.getByRole('link', { name: /^Remove filter action/ }).click();
    await page.waitForURL((u) => !u.hash.includes('action='));
    // The page re-renders for the new address: the chips go once it has.
    await page.getByRole('list', { name: 'Filters in force' }).waitFor({ state: 'detached' });
  });

  it('keeps the Tasks table inside its box with a long outcome, shows outcomes as fields, and queues a task for an agent picked from a list', async () => {
    const pool = stack.db.pool;
    const customerId = await createCustomer(pool);
    const licenseId = await createLicense(pool, customerId);
    const { agentId } = await createAgent(pool, licenseId, customerId);
    await pool.query(`UPDATE agents SET hostname_hint = 'render-node-3' WHERE id = $1`, [agentId]);
    const longWord = 'x'.repeat(400);
    const result = {
      status: 200,
      body: `${longWord} and then a sentence that goes on and on about the page it fetched from the network`,
      headers: { 'content-type': 'text/html; charset=utf-8', server: 'a-very-long-server-name-'.repeat(8) },
    };
    await pool.query(
      `INSERT INTO tasks (id, agent_id, license_id, customer_id, kind, payload, state, attempts, result, created_by_kind, created_by_id, created_at, updated_at, completed_at)
       VALUES ($1, $2, $3, $4, 'http.get', $5, 'succeeded', 1, $6, 'admin', 'adm_e2econsoletasks000000', now(), now(), now())`,
      [newId('tsk'), agentId, licenseId, customerId, { url: `https://example.test/${longWord}` }, result],
    );
    const page = await signIn();
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByRole('navigation').getByRole('link', { name: 'Tasks' }).click();
    await page.getByRole('heading', { name: 'Tasks', level: 1 }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'render-node-3' });
    // The outcome as labelled fields, not raw JSON cut mid-word.
    expect(await textOf(row.locator('td').nth(3).locator('dl'))).toContain('status200');
    const overflow = await page.locator('.table-wrap').evaluate((el) => ({
      scroll: el.scrollWidth,
      client: el.clientWidth,
    }));
    expect(overflow.scroll).toBeLessThanOrEqual(overflow.client);
    // The cancel column and Created are in view, not scrolled out.
    const created = await row.locator('td').nth(4).boundingBox();
    expect(created!.x + created!.width).toBeLessThanOrEqual(1280);
    await shoot(page, 'tasks');

    await page.getByText('Queue a task').click();
    const form = page.getByRole('form', { name: 'New task' });
    const options = await form.getByLabel('Agent').locator('option').allTextContents();
    expect(options).toContain(`render-node-3 · ${agentId} · active`);
    await form.getByLabel('Agent').selectOption(agentId);
    await form.getByLabel('Kind').selectOption('echo');
    await form.getByLabel('Payload (JSON)').fill('{"message": "picked from the list"}');
    await form.getByRole('button', { name: 'Queue task' }).click();
    await page.getByText('picked from the list', { exact: true }).waitFor();
    const { rows } = await pool.query<{ agent_id: string }>(
      `SELECT agent_id FROM tasks WHERE payload->>'message' = 'picked from the list'`,
    );
    expect(rows).toEqual([{ agent_id: agentId }]);
  });

  it("shows an agent's machine story, what the agent reports next to what the control plane decided, and deregisters only by name", async () => {
    const pool = stack.db.pool;
    const customerId = await createCustomer(pool);
    const licenseId = await createLicense(pool, customerId, { state: 'revoked' });
    const { agentId } = await createAgent(pool, licenseId, customerId);
    await pool.query(
      `UPDATE agents SET hostname_hint = 'edge-12', fingerprint_score = 80, changed_components = '{disk}', last_heartbeat_at = now(),
              runtime_hash = $2, reported_terminal_reason = 'LICENSE_REVOKED: license revoked', reported_terminal_at = now(),
              acknowledged_status_version = 1
        WHERE id = $1`,
      [agentId, 'a'.repeat(64)],
    );
    const page = await signIn('#/agents');
    const row = page.getByRole('row').filter({ hasText: agentId });
    expect(await textOf(row.getByTestId('reported'))).toBe('agent reports terminal: LICENSE_REVOKED: license revoked');
    await row.getByRole('link', { name: agentId }).click();
    await page.getByRole('heading', { name: `Agent ${agentId}` }).waitFor();
    const facts = await textOf(page.locator('.facts'));
    expect(facts).toContain('80/100 · changed: disk');
    expect(facts).toContain('LICENSE_REVOKED: license revoked');
    expect(await textOf(page.getByTestId('agent-status'))).toBe('active');
    expect(await textOf(page.getByTestId('status-version'))).toMatch(/^\d+ here · 1 acknowledged by the agent$/);
    await shoot(page, 'agent');

    // "Update to…" sends the version; the API's refusal is shown and nothing is wanted.
    expect(await textOf(page.getByTestId('wanted-version'))).toMatch(/^none asked/);
    await page.getByLabel(/Published release to install/).fill('9.9.9');
    await page.getByRole('button', { name: 'Update' }).click();
    await page.getByText('No release 9.9.9 is published.').waitFor();
    expect((await pool.query('SELECT wanted_version FROM agents WHERE id = $1', [agentId])).rows[0]).toEqual({
      wanted_version: null,
    });

    // Its update policy and where it comes from, its last update check; the policy set here.
    expect(await textOf(page.getByTestId('update-policy'))).toBe('automaticthe default');
    expect(await textOf(page.getByTestId('update-state'))).toMatch(/^no update check reported/);
    await page.getByLabel('Update policy of this agent').selectOption('manual');
    await page.getByRole('button', { name: 'Set policy' }).click();
    await page.getByTestId('update-policy').getByText('set on this agent').waitFor();
    expect(await textOf(page.getByTestId('update-policy'))).toBe('manualset on this agent');
    expect((await pool.query('SELECT update_policy FROM agents WHERE id = $1', [agentId])).rows[0]).toEqual({
      update_policy: 'manual',
    });
    await page.getByLabel('Update policy of this agent').selectOption('pinned');
    await page.getByLabel('Pinned release (only with pinned)').fill('8.8.8');
    await page.getByRole('button', { name: 'Set policy' }).click();
    await page.getByText('No release 8.8.8 is published.').waitFor();

    // Deregistering wants the agent id typed in full; a near miss does nothing.
    const confirm = page.getByLabel(/Type the agent id to confirm/);
    await confirm.fill(agentId.slice(0, -1));
    await page.getByRole('button', { name: 'Deregister' }).click();
    expect(await confirm.evaluate((el) => (el as unknown as { validity: { valid: boolean } }).validity.valid)).toBe(
      false,
    );
    expect((await pool.query('SELECT status FROM agents WHERE id = $1', [agentId])).rows[0]).toEqual({
      status: 'active',
    });
    await confirm.fill(agentId);
    await page.getByRole('button', { name: 'Deregister' }).click();
    await page.getByTestId('agent-status').locator('[data-state="deregistered"]').waitFor();
  });

  it('deactivates an admin and a customer only when their email or name is typed in full', async () => {
    const pool = stack.db.pool;
    const other = await createAdmin(testServices({ pool }).identity.accounts, {
      email: uniqueEmail('console-other'),
      password: 'another long and careful password',
      role: 'viewer',
    });
    const customerId = await createCustomer(pool);
    const page = await signIn('#/admins');
    const row = page.getByRole('row').filter({ hasText: other.email });
    await row.getByText('Deactivate…').click();
    const form = row.getByRole('form', { name: `Deactivate ${other.email}` });
    const confirm = form.getByLabel(/Type the email to confirm/);
    await confirm.fill(other.email.slice(1));
    await form.getByRole('button', { name: 'Deactivate' }).click();
    expect(await confirm.evaluate((el) => (el as unknown as { validity: { valid: boolean } }).validity.valid)).toBe(
      false,
    );
    const active = async (table: string, id: string) =>
      (
        await pool.query<{ active: boolean }>(`SELECT deactivated_at IS NULL AS active FROM ${table} WHERE id = $1`, [
          id,
        ])
      ).rows[0]?.active;
    expect(await active('admins', other.id)).toBe(true);
    await confirm.fill(other.email);
    await form.getByRole('button', { name: 'Deactivate' }).click();
    await row.getByRole('button', { name: `Reactivate ${other.email}` }).waitFor();
    expect(await active('admins', other.id)).toBe(false);

    await page.goto(`${stack.baseUrl}/#/customers/${customerId}`);
    const { rows } = await pool.query<{ name: string }>('SELECT name FROM customers WHERE id = $1', [customerId]);
    // The customer's deactivation sits folded away under its own summary.
    await page.locator('summary', { hasText: 'Deactivate customer' }).click();
    const customerForm = page.getByRole('form', { name: 'Deactivate customer' });
    await customerForm.getByLabel(/Type the customer name to confirm/).fill(`${rows[0]!.name} `);
    await customerForm.getByRole('button', { name: 'Deactivate customer' }).click();
    expect(await active('customers', customerId)).toBe(true);
    await customerForm.getByLabel(/Type the customer name to confirm/).fill(rows[0]!.name);
    await customerForm.getByRole('button', { name: 'Deactivate customer' }).click();
    await page.locator('.facts [data-state="deactivated"]').waitFor();
    expect(await active('customers', customerId)).toBe(false);
  });

  it('every page passes an axe-core scan with no serious or critical violation, fits 1280×800 and 390×844, and is screenshotted', async () => {
    const pool = stack.db.pool;
    const customerId = await createCustomer(pool);
    const licenseId = await createLicense(pool, customerId);
    const { agentId } = await createAgent(pool, licenseId, customerId);
    const axe = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    const page = await signIn();
    const pagesToScan: Array<[name: string, hash: string]> = [
      ['overview', '#/overview'],
      ['licenses', '#/licenses'],
      ['license', `#/licenses/${licenseId}`],
      ['customers', '#/customers'],
      ['customer', `#/customers/${customerId}`],
      ['tokens', '#/tokens'],
      ['agents', '#/agents'],
      ['agent', `#/agents/${agentId}`],
      ['tasks', '#/tasks'],
      ['audit', '#/audit'],
      ['service-accounts', '#/service-accounts'],
      ['admins', '#/admins'],
    ];
    const found: string[] = [];
    for (const [width, height] of [
      [1280, 800],
      [390, 844],
    ] as const) {
      await page.setViewportSize({ width, height });
      for (const [name, hash] of pagesToScan) {
        await page.goto(`${stack.baseUrl}/${hash}`);
        await page.locator('main h1').first().waitFor();
        await page.locator('main .loading').waitFor({ state: 'detached' });
        expect((await page.locator('main .error').allTextContents()).join('')).toBe('');
        // axe is evaluated through the debugging protocol: the page's own CSP stays as it is.
        if (!(await page.evaluate('typeof window.axe'))?.toString().includes('object')) await page.evaluate(axe);
        const violations = await page.evaluate<Array<{ id: string; impact: string; nodes: string[] }>>(
          `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) })))`,
        );
        for (const v of violations.filter((x) => x.impact === 'serious' || x.impact === 'critical'))
          found.push(`${name} @${width}: ${v.id} (${v.impact}) ${v.nodes.join(', ')}`);
        // The page itself never scrolls sideways; wide tables scroll inside their own box.
        const fits = await page.evaluate(
          'document.documentElement.scrollWidth <= document.documentElement.clientWidth',
        );
        if (!fits) found.push(`${name} @${width}: the page scrolls sideways`);
        await shoot(page, `${name}-${width}x${height}`);
      }
    }
    expect(found).toEqual([]);
  }, 180_000);

  it('deactivates a customer only when its name is typed in full (regex characters in the name match only themselves)', async () => {
    const page = await signIn();
    const name = 'Acme (Robotics) Inc.*';
    const customer = (await pageApi(page)('POST', '/v1/admin/customers', { name })) as { id: string };
    await page.goto(`${stack.baseUrl}/#/customers/${customer.id}`);
    await page.getByText('Deactivate customer').first().click();
    const confirm = page.getByLabel(/Type the customer name to confirm/);
    const submit = page.getByRole('form', { name: 'Deactivate customer' }).getByRole('button');
    for (const nearMiss of ['Acme (Robotics) Inc.', 'Acme xRoboticsx Incxx']) {
      await confirm.fill(nearMiss);
      await submit.click();
      expect(await confirm.evaluate((el) => (el as unknown as { validity: { valid: boolean } }).validity.valid)).toBe(
        false,
      );
    }
    const active = async () =>
      (await stack.db.pool.query<{ active: boolean }>('SELECT active FROM customers WHERE id = $1', [customer.id]))
        .rows[0]!.active;
    expect(await active()).toBe(true);
    await confirm.fill(name);
    await submit.click();
    await page.locator('.facts [data-state="deactivated"]').waitFor();
    expect(await active()).toBe(false);
  });
});
