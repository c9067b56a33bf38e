import { testServices } from '../support/app';
import { createAdmin } from '../../cli/create-admin';
import { loadPurposeSigner, newId } from '../../protocol';
import { createAgent, createCustomer, createLicense } from '../support/agent-server-fixtures';
import { uniqueEmail } from '../support/identity';
import { useAdminWeb } from '../support/admin-web';
import { textOf, type WebStack } from '../support/web-stack';
import { makeRelease } from '../support/tuf';

/** The admin UI in Debian's Chromium against the real API, PostgreSQL, Temporal and a worker. */
describe('admin UI (browser)', () => {
  const ui = useAdminWeb('e2eadmin', 'ui-admin');
  const { email, password, newPage, signIn } = ui;
  let stack: WebStack;
  beforeAll(() => {
    stack = ui.stack;
  });

  it("shows the API's own message for a wrong password and stays on the sign-in form", async () => {
    const page = await newPage();
    const answer = page.waitForResponse((r) => r.url().endsWith('/v1/admin/login'));
    await signIn(page, 'not the password at all');
    const res = await answer;
    expect(res.status()).toBe(401);
    const { error } = (await res.json()) as { error: { message: string } };
    expect(error.message.length).toBeGreaterThan(0);
    expect(await textOf(page.getByRole('alert').filter({ hasText: error.message }))).toBe(error.message);
    expect(await page.getByTestId('whoami').count()).toBe(0);
  });

  it('an admin with a one-time password (agentina create-admin) must choose a password before anything else', async () => {
    const first = await createAdmin(testServices({ pool: stack.db.pool }).identity.accounts, {
      email: uniqueEmail('first-admin'),
    });
    expect(first.oneTimePassword).toBeDefined();
    const page = await newPage();
    await page.goto(`${stack.baseUrl}/#/audit`);
    await page.getByLabel('Email', { exact: true }).fill(first.email);
    await page.getByLabel('Password').fill(first.oneTimePassword!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Choose your password' }).waitFor();
    expect(await page.getByRole('navigation').count()).toBe(0);
    await page.getByLabel('One-time password').fill(first.oneTimePassword!);
    await page.getByLabel('New password', { exact: true }).fill('the first admin chose this one');
    await page.getByLabel('New password again').fill('the first admin chose this two');
    await page.getByRole('button', { name: 'Set password' }).click();
    expect(await textOf(page.getByRole('alert').filter({ hasText: 'differ' }))).toBe('The two new passwords differ.');
    await page.getByLabel('New password again').fill('the first admin chose this one');
    await page.getByRole('button', { name: 'Set password' }).click();
    // Back where the admin was going.
    await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
    expect(await textOf(page.getByTestId('whoami'))).toContain(first.email);
  });

  it('signs in, creates a customer and a license, sees it active, verifies its signature, revokes it', async () => {
    const page = await newPage();
    await signIn(page);
    expect(await textOf(page.getByTestId('whoami'))).toContain(email);
    // The session lives only in the HttpOnly cookie: nothing readable by scripts.
    expect(
      await page.evaluate('({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie })'),
    ).toEqual({ local: 0, session: 0, cookie: '' });

    await page.getByRole('navigation').getByRole('link', { name: 'Customers' }).click();
    await page.getByLabel('Customer name').fill('Acme Robotics');
    await page.getByRole('button', { name: 'Create customer' }).click();
    await page.getByRole('heading', { name: 'Acme Robotics' }).waitFor();
    const customerId = /#\/customers\/(cus_[^/?#&]+)/.exec(page.url())?.[1];
    expect(customerId).toBeDefined();

    await page.getByRole('link', { name: 'Show licenses' }).click();
    await page.getByText('New license').click();
    await page.getByRole('form', { name: 'New license' }).getByLabel('Customer').selectOption(customerId!);
    await page.getByLabel('Plan').fill('enterprise');
    await page.getByLabel('Features').fill('sso, seats=10');
    await page.getByLabel('Max agents').fill('3');
    await page.getByLabel('Kind').selectOption('term');
    await page.getByLabel('Length (days)').fill('365');
    await page.getByLabel('Grace days').fill('7');
    await page.getByRole('button', { name: 'Create license' }).click();

    await page.waitForURL(/#\/licenses\/lic_/);
    await page.locator('[data-testid="license-state"] [data-state="active"]').waitFor();
    expect(await textOf(page.locator('.facts'))).toContain('sso, seats=10');
    const temporalLink = page.getByRole('link', { name: 'Open in Temporal Web' });
    expect(await temporalLink.getAttribute('href')).toMatch(
      /^http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/license%2Flic_/,
    );
    await page
      .getByTestId('signature')
      .getByText(/^Signature valid/)
      .waitFor();

    await page.getByLabel('Reason for revoking').fill('contract ended');
    // Only what the lifecycle accepts is offered; the rest says why not.
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    await page
      .getByRole('list', { name: 'Not available now' })
      .getByText(/not suspended/)
      .waitFor();
    // Revoking asks for the license id first.
    const licenseId = (await page.locator('h1 code').textContent())!;
    await page.getByLabel(/Type the license id to confirm/).fill(licenseId);
    await page.getByRole('button', { name: 'Revoke' }).first().click();
    await page.locator('[data-testid="license-state"] [data-state="revoked"]').waitFor();
    expect(await textOf(page.getByRole('status').filter({ hasText: 'Revoked.' }))).toBe('Revoked.');
    // The revoked document (a new version) is signed too.
    await page
      .getByTestId('signature')
      .getByText(/^Signature valid/)
      .waitFor();

    // After revocation nothing is offered; each action says why the lifecycle refuses it.
    expect(await page.getByRole('button', { name: 'Renew' }).count()).toBe(0);
    await page.getByText('The lifecycle accepts no change in this state.').waitFor();
    await page
      .getByRole('list', { name: 'Not available now' })
      .getByText(/revoked license cannot be renewed/)
      .waitFor();
    expect(await page.locator('[data-testid="license-state"] [data-state="revoked"]').count()).toBe(1);
  });

  it('says the signature is invalid when the document is changed on the way', async () => {
    const page = await newPage();
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    const customer = await page.evaluate(async () => {
      const r = await fetch('/v1/admin/customers', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Tamper Test' }),
      });
      return (await r.json()) as { id: string };
    });
    const license = await page.evaluate(async (customerId) => {
      const r = await fetch('/v1/admin/licenses', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ customerId, plan: 'basic', maxAgents: 1, term: { days: 30 } }),
      });
      return ((await r.json()) as { license: { id: string } }).license;
    }, customer.id);

    await page.goto(`${stack.baseUrl}/#/licenses/${license.id}`);
    await page
      .getByTestId('signature')
      .getByText(/^Signature valid/)
      .waitFor();

    await page.route('**/v1/admin/licenses/*/document', async (route) => {
      const original = await route.fetch();
      const signed = (await original.json()) as { document: { maxAgents: number } };
      signed.document.maxAgents = 1000;
      await route.fulfill({ response: original, json: signed });
    });
    await page.getByRole('button', { name: 'Check signature' }).click();
    expect(await textOf(page.getByTestId('signature').getByText(/^Signature invalid/))).toMatch(/does not match/);
    expect(await textOf(page.locator('pre.doc'))).toContain('"maxAgents": 1000');
  });

  it('lists the audit trail, verifies the chain, and signs out', async () => {
    const page = await newPage();
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    await page.evaluate(async () => {
      await fetch('/v1/admin/customers', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Audited Ltd' }),
      });
    });
    await page.getByRole('navigation').getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('cell', { name: 'customer · created' }).first().waitFor();
    await page.getByLabel('Action').selectOption('customer.created');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/action=customer.created/);
    await page.getByRole('cell', { name: 'Audited Ltd' }).first().waitFor();
    const actions = await page.locator('tbody tr td:nth-child(4)').allTextContents();
    expect(actions.length).toBeGreaterThan(0);
    expect(new Set(actions)).toEqual(new Set(['customer · created']));

    await page.getByRole('button', { name: 'Verify chain' }).click();
    expect(await textOf(page.getByTestId('audit-verify').getByText(/^Chain intact/))).toMatch(
      /^Chain intact: \d+ events/,
    );

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(await page.evaluate(async () => (await fetch('/v1/admin/me')).status)).toBe(401);
  });

  it('asks to sign in again when the session ends while the page is open', async () => {
    const page = await newPage();
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    // Let the home view finish loading first: its own calls would otherwise meet the ended session.
    await page.locator('main .loading').waitFor({ state: 'detached' });
    // The session ends elsewhere (another tab signing out, an idle timeout, a deactivation).
    const { rowCount } = await stack.db.adminPool.query(
      'DELETE FROM admin_sessions WHERE admin_id = (SELECT id FROM admins WHERE email = $1)',
      [email],
    );
    expect(rowCount).toBeGreaterThan(0);
    await page.getByRole('navigation').getByRole('link', { name: 'Customers' }).click();
    expect(await textOf(page.getByRole('alert').filter({ hasText: 'session has ended' }))).toBe(
      'Your session has ended; sign in again.',
    );
    await page.getByLabel('Password').fill(password);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Customers', level: 1 }).waitFor();
  });

  it('a page still loading when the address changes does not replace the page opened after it', async () => {
    const customerId = await createCustomer(stack.db.pool);
    const page = await newPage();
    // Only the home page's reads are slow (a busy API, a long list): its render ends last.
    let slowed = 0;
    await page.route('**/v1/admin/**', async (route) => {
      const url = route.request().url();
      if (route.request().method() === 'GET' && !/\/v1\/admin\/(me|customers)\b/.test(url)) {
        slowed += 1;
        await new Promise((r) => setTimeout(r, 1500));
      }
      await route.continue();
    });
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    await page.goto(`${stack.baseUrl}/#/customers/${customerId}`);
    await page.getByText('New portal user').waitFor();
    // The home page's answers arrive now; the customer's page must still be the one shown.
    await page.waitForTimeout(2000);
    expect(slowed).toBeGreaterThan(0);
    expect(await page.getByText('New portal user').count()).toBe(1);
    await page.unrouteAll({ behavior: 'ignoreErrors' });
  });

  it('renders every section without an error, and shows new service tokens and one-time passwords once', async () => {
    const pool = stack.db.pool;
    const customerId = await createCustomer(pool);
    const licenseId = await createLicense(pool, customerId);
    const { agentId } = await createAgent(pool, licenseId, customerId);
    await pool.query(
      `INSERT INTO tasks (id, agent_id, license_id, customer_id, kind, payload, created_by_kind, created_by_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, 'echo', '{"message":"hi"}', 'admin', 'adm_e2eadminuitest0000000', now(), now())`,
      [newId('tsk'), agentId, licenseId, customerId],
    );
    // The agent's last heartbeat reported a frozen release repository: the releases page says so.
    await pool.query(`UPDATE agents SET update_report = $2 WHERE id = $1`, [
      agentId,
      { outcome: 'refused', reason: 'frozen', at: new Date().toISOString() },
    ]);
    const page = await newPage();
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    const sections: Array<[string, string, string]> = [
      ['Customers', 'Customers', customerId],
      ['Activation tokens', 'Activation tokens', 'Create activation token'],
      ['Agents', 'Agents', agentId],
      ['Tasks', 'Tasks', 'echo'],
      ['Releases', 'Releases', '1 agent(s) report a frozen repository'],
      ['Audit log', 'Audit log', 'Verify chain'],
      ['Service accounts', 'Service accounts', 'Create service account'],
      ['Admins', 'Admins', email],
    ];
    for (const [nav, heading, shows] of sections) {
      await page.getByRole('navigation').getByRole('link', { name: nav }).click();
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await page.getByText(shows).first().waitFor();
      expect((await page.locator('main .error').allTextContents()).join('')).toBe('');
    }

    // Deregistering asks first; declined, nothing happens; accepted, the agent is deregistered.
    await page.getByRole('navigation').getByRole('link', { name: 'Agents' }).click();
    page.once('dialog', (d) => void d.dismiss());
    await page.getByRole('button', { name: `Deregister ${agentId}` }).click();
    expect(await page.locator('[data-state="deregistered"]').count()).toBe(0);
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: `Deregister ${agentId}` }).click();
    await page.getByRole('row').filter({ hasText: agentId }).locator('[data-state="deregistered"]').waitFor();
    expect(
      (
        await pool.query<{ deregistered_at: Date | null }>('SELECT deregistered_at FROM agents WHERE id = $1', [
          agentId,
        ])
      ).rows[0]!.deregistered_at,
    ).not.toBeNull();

    await page.getByRole('navigation').getByRole('link', { name: 'Service accounts' }).click();
    await page.getByLabel('Name').fill('billing sync');
    // A token holds the scopes ticked for it, and nothing else.
    await page.getByLabel('customers:read').check();
    await page.getByRole('button', { name: 'Create service account' }).click();
    const token = await textOf(page.getByTestId('secret'));
    expect(token).toMatch(/^svc_/);
    const tokenStatus = await page.evaluate(
      async (t) =>
        (await fetch('/v1/admin/customers', { headers: { authorization: `Bearer ${t}` }, credentials: 'omit' })).status,
      token,
    );
    expect(tokenStatus).toBe(200);
    await page.getByRole('button', { name: 'Revoke billing sync' }).click();
    await page.getByRole('row').filter({ hasText: 'billing sync' }).locator('[data-state="revoked"]').waitFor();
    expect(await page.content()).not.toContain(token);

    await page.getByRole('navigation').getByRole('link', { name: 'Admins' }).click();
    const second = uniqueEmail('second-admin');
    await page.getByLabel('Email', { exact: true }).fill(second);
    await page.getByRole('button', { name: 'Create admin' }).click();
    expect((await textOf(page.getByTestId('secret'))).length).toBeGreaterThanOrEqual(12);
  });

  it('yanks a release from the releases page only when its version is typed in full', async () => {
    const services = testServices({ pool: stack.db.pool, keysDir: stack.keysDir });
    await services.releases.publish(
      { kind: 'system', id: 'admin-ui-test' },
      makeRelease(loadPurposeSigner(stack.keysDir, 'release'), '7.0.0'),
    );
    const page = await newPage();
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    await page.getByRole('navigation').getByRole('link', { name: 'Releases' }).click();
    const row = page.getByRole('row').filter({ hasText: '7.0.0' });
    await row.locator('[data-state="published"]').waitFor();
    await row.getByText('Yank…').click();
    await row.getByLabel('Reason (kept in the audit)').fill('bad build');
    const confirm = row.getByLabel(/Type the version to confirm: 7\.0\.0/);
    await confirm.fill('7.0');
    await row.getByRole('button', { name: 'Yank' }).click();
    expect(await confirm.evaluate((el) => (el as unknown as { validity: { valid: boolean } }).validity.valid)).toBe(
      false,
    );
    expect((await stack.db.pool.query(`SELECT yanked_at FROM releases WHERE version = '7.0.0'`)).rows[0]).toEqual({
      yanked_at: null,
    });
    await confirm.fill('7.0.0');
    await row.getByRole('button', { name: 'Yank' }).click();
    await page.getByRole('row').filter({ hasText: '7.0.0' }).locator('[data-state="yanked"]').waitFor();
    const audit = await stack.db.pool.query<{ actor_kind: string; data: { version: string; reason: string } }>(
      `SELECT actor_kind, data FROM audit_events WHERE action = 'release.yanked'`,
    );
    expect(audit.rows).toEqual([{ actor_kind: 'admin', data: { version: '7.0.0', reason: 'bad build' } }]);
  });
});
