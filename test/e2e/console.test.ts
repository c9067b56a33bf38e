import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createAdmin } from '../../cli/create-admin';
import { ROOT } from '../../scripts/stack/tools';
import { createAgent, createCustomer, createLicense } from '../support/agent-server-fixtures';
import { testServices } from '../support/app';
import { uniqueEmail } from '../support/identity';
import { createPageTracker, startWebStack, textOf, type WebStack } from '../support/web-stack';

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
    await page.getByLabel('Email').fill(email);
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
});
