import type { Page } from 'playwright-core';
import { createAgent, createCustomer } from '../support/agent-server-fixtures';
import { useAdminWeb } from '../support/admin-web';
import { textOf } from '../support/web-stack';

/** Policies and a license's terms in the admin UI, in Debian's Chromium against the real stack. */
describe('terms and policies (browser)', () => {
  const ui = useAdminWeb('e2eterms', 'ui-terms');
  const signIn = async (page: Page) => {
    await ui.signIn(page);
    await page.getByTestId('whoami').waitFor();
  };

  const row = async (id: string) =>
    (
      await ui.stack.db.pool.query<{
        plan: string;
        max_agents: number;
        version: number;
        policy_version: number | null;
      }>('SELECT plan, max_agents, version::int AS version, policy_version FROM licenses WHERE id = $1', [id])
    ).rows[0]!;

  it('creates a policy, a license from it, edits the license terms (a refusal shown as the API says it), then applies a new policy version', async () => {
    const customerId = await createCustomer(ui.stack.db.pool);
    const page = await ui.newPage();
    await signIn(page);

    await page.getByRole('navigation').getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('heading', { name: 'Policies', level: 1 }).waitFor();
    await page.getByText('New policy').click();
    const create = page.getByRole('form', { name: 'New policy' });
    await create.getByLabel('Name').fill('Team annual');
    await create.getByLabel('Max agents').fill('4');
    await create.getByLabel('Features').fill('sso, seats=4');
    await create.getByLabel('Seat reclaim (days offline)').fill('30');
    await page.getByRole('button', { name: 'Create policy' }).click();
    await page.waitForURL(/#\/policies\/pol_/);
    expect(await textOf(page.getByTestId('policy-version'))).toBe('1');

    await page.getByText('New license from this policy').click();
    await page
      .getByRole('form', { name: 'New license from this policy' })
      .getByLabel('Customer')
      .selectOption(customerId);
    await page.getByRole('button', { name: 'Create license' }).click();
    await page.waitForURL(/#\/licenses\/lic_/);
    const licenseId = (await page.locator('h1 code').textContent())!;
    expect(await textOf(page.locator('.facts'))).toContain('sso, seats=4');
    expect(await textOf(page.locator('.facts'))).toMatch(/pol_\S+ \(version 1\)/);

    // Change terms: only what differs is sent, the version rises, the page shows the new terms.
    const terms = page.getByRole('form', { name: 'Change terms' });
    await terms.getByLabel('Max agents').fill('6');
    await terms.getByLabel('Features').fill('sso, seats=6, audit');
    const sent = page.waitForRequest((r) => r.method() === 'PATCH');
    await terms.getByRole('button', { name: 'Change terms' }).click();
    expect((await sent).postDataJSON()).toEqual({ features: { sso: true, seats: 6, audit: true }, maxAgents: 6 });
    await page.getByRole('status').filter({ hasText: 'Terms changed' }).waitFor();
    expect(await textOf(page.getByTestId('license-version'))).toBe('2');
    expect(await textOf(page.locator('.facts'))).toContain('sso, audit, seats=6'); // as PostgreSQL orders jsonb keys
    await page
      .getByTestId('signature')
      .getByText(/^Signature valid/)
      .waitFor();

    // Two agents hold seats: lowering to 1 is refused with the API's own message.
    await createAgent(ui.stack.db.pool, licenseId, customerId);
    await createAgent(ui.stack.db.pool, licenseId, customerId);
    const again = page.getByRole('form', { name: 'Change terms' });
    await again.getByLabel('Max agents').fill('1');
    await again.getByRole('button', { name: 'Change terms' }).click();
    await again.getByRole('alert').filter({ hasText: 'has 2 active agent(s)' }).waitFor();
    expect(await row(licenseId)).toMatchObject({ max_agents: 6, version: 2 });

    // A new policy version reaches the license only when applied.
    await page.goto(`${ui.stack.baseUrl}/#/policies`);
    await page.getByRole('link', { name: 'Team annual' }).click();
    await page.getByText('Edit (writes a new version)').click();
    const edit = page.getByRole('form', { name: 'Edit policy' });
    await edit.getByLabel('Plan').fill('Team annual v2');
    await edit.getByLabel('Max agents').fill('8');
    await page.getByRole('button', { name: 'Save as new version' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved as version 2' }).waitFor();
    expect(await row(licenseId)).toMatchObject({ plan: 'Team annual', max_agents: 6, policy_version: 1 });
    await page.getByRole('button', { name: 'Apply to its licenses' }).click();
    await page.getByRole('status').filter({ hasText: 'Applied version 2: 1 changed' }).waitFor();
    await page.getByRole('table', { name: 'Apply results' }).getByText(licenseId).waitFor();
    expect(await row(licenseId)).toMatchObject({
      plan: 'Team annual v2',
      max_agents: 8,
      version: 3,
      policy_version: 2,
    });
  });
});
