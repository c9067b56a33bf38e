import { URI } from 'otpauth';
import { testServices } from '../support/app';
import type { Page } from 'playwright-core';
import { createAdmin } from '../../cli/create-admin';
import { seedCustomer, seedCustomerUser, seedServiceAccount, TEST_PASSWORD, uniqueEmail } from '../support/identity';
import { createPageTracker, startWebStack, textOf, type WebStack } from '../support/web-stack';

/** The customer portal in Debian's Chromium against the real API, PostgreSQL, Temporal and a worker. */
describe('customer portal (browser)', () => {
  let stack: WebStack;
  let userA: { email: string; customerId: string };
  let licensesA: string[];
  let licenseB: string;
  const admin = { email: uniqueEmail('portal-admin'), password: 'an admin password that is long' };
  /** Uncaught page errors and CSP refusals: none may happen in any test. */
  const pages = createPageTracker(() => stack);
  const newPage = () => pages.newPage();

  beforeAll(async () => {
    stack = await startWebStack('e2eportal');
    const pool = stack.db.pool;
    const a = await seedCustomer(pool, 'Customer A');
    const b = await seedCustomer(pool, 'Customer B');
    userA = await seedCustomerUser(pool, a.id);
    await createAdmin(testServices({ pool: pool }).identity.accounts, admin);
    const { token } = await seedServiceAccount(pool);
    const create = async (customerId: string, plan: string): Promise<string> => {
      const res = await fetch(`${stack.baseUrl}/v1/admin/licenses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ customerId, plan, maxAgents: 2, term: { days: 90 } }),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { license: { id: string } }).license.id;
    };
    licensesA = [await create(a.id, 'team'), await create(a.id, 'edge')];
    licenseB = await create(b.id, 'other-customer-plan');
  });

  afterAll(async () => {
    await pages.closeAll();
    await stack?.close();
  });

  afterEach(() => {
    expect(pages.problems.splice(0)).toEqual([]);
  });

  async function signIn(page: Page, path: string, email: string, password: string): Promise<void> {
    await page.goto(`${stack.baseUrl}${path}`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  it('a customer user signs in at /portal and sees only their own licenses, each with a valid signature', async () => {
    const page = await newPage();
    await signIn(page, '/portal', userA.email, TEST_PASSWORD);
    expect(await textOf(page.getByTestId('whoami'))).toContain('Customer A');
    await page.getByRole('cell', { name: licensesA[0], exact: true }).waitFor();
    const table = await textOf(page.locator('table'));
    for (const id of licensesA) expect(table).toContain(id);
    expect(table).not.toContain(licenseB);
    expect(table).not.toContain('other-customer-plan');
    // Another customer's license is a 404 to this session, as a page and as a document.
    const status = await page.evaluate(
      async (id) => [
        (await fetch(`/v1/portal/licenses/${id}`)).status,
        (await fetch(`/v1/portal/licenses/${id}/document`)).status,
      ],
      licenseB,
    );
    expect(status).toEqual([404, 404]);

    await page.getByRole('button', { name: `Check the signature of ${licensesA[0]}` }).click();
    await page.getByRole('row').filter({ hasText: licensesA[0]! }).getByText('valid').waitFor();
  });

  it('creates an activation token that is shown once', async () => {
    const page = await newPage();
    await signIn(page, '/portal', userA.email, TEST_PASSWORD);
    await page.getByTestId('whoami').waitFor();
    await page.getByRole('navigation').getByRole('link', { name: 'Activation tokens' }).click();
    await page.getByRole('form', { name: 'New activation token' }).getByLabel('License').selectOption(licensesA[1]!);
    await page.getByLabel('Label').fill('build server 3');
    const issued = page.waitForResponse(
      (r) => r.url().endsWith('/v1/portal/activation-tokens') && r.request().method() === 'POST',
    );
    await page.getByRole('button', { name: 'Create activation token' }).click();
    expect((await issued).status()).toBe(201);
    const token = await textOf(page.getByTestId('secret'));
    expect(token).toMatch(/^act_[A-Za-z0-9_-]{22,64}$/);
    expect(await textOf(page.getByRole('status', { name: 'Activation token' }))).toContain('Shown only this once');
    await page.getByRole('cell', { name: 'build server 3' }).waitFor();

    // Reloaded, the page lists the token (pending) but can no longer show its secret.
    await page.reload();
    await page.getByRole('cell', { name: 'build server 3' }).waitFor();
    expect(await textOf(page.getByRole('row').filter({ hasText: 'build server 3' }))).toContain('pending');
    expect(await page.content()).not.toContain(token);
    expect(await page.getByTestId('secret').count()).toBe(0);
    const listed = await page.evaluate(async () => (await fetch('/v1/portal/activation-tokens')).text());
    expect(listed).not.toContain(token);
    const { rows } = await stack.db.adminPool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM activation_tokens WHERE license_id = $1',
      [licensesA[1]],
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('a portal user created with a one-time password must choose a new one before anything else', async () => {
    const adminPage = await newPage();
    await signIn(adminPage, '/', admin.email, admin.password);
    await adminPage.getByTestId('whoami').waitFor();
    await adminPage.goto(`${stack.baseUrl}/#/customers/${userA.customerId}`);
    await adminPage.getByText('New portal user').click();
    const email = uniqueEmail('otp-user');
    await adminPage.getByLabel('Email', { exact: true }).fill(email);
    await adminPage.getByRole('button', { name: 'Create portal user' }).click();
    const oneTime = await textOf(adminPage.getByTestId('secret'));
    expect(oneTime.length).toBeGreaterThanOrEqual(12);

    const page = await newPage();
    await signIn(page, '/portal', email, oneTime);
    await page.getByRole('heading', { name: 'Choose your password' }).waitFor();
    expect(await page.evaluate(async () => (await fetch('/v1/portal/licenses')).status)).toBe(403);
    await page.getByLabel('One-time password').fill(oneTime);
    await page.getByLabel('New password', { exact: true }).fill('short');
    await page.getByLabel('New password again').fill('short');
    const refused = page.waitForResponse((r) => r.url().endsWith('/v1/portal/me/password'));
    await page.getByRole('button', { name: 'Set password' }).click();
    const res = await refused;
    expect(res.status()).toBe(400);
    const { error } = (await res.json()) as { error: { message: string } };
    expect(await textOf(page.getByRole('alert').filter({ hasText: error.message }))).toContain(error.message);

    const chosen = 'my own portal password, long enough';
    await page.getByLabel('New password', { exact: true }).fill(chosen);
    await page.getByLabel('New password again').fill(chosen);
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByRole('cell', { name: licensesA[0], exact: true }).waitFor();
    expect(await textOf(page.getByTestId('whoami'))).toContain(email);
  });

  it('an admin session does not open the portal, and a portal session does not open the admin UI', async () => {
    const adminPage = await newPage();
    await signIn(adminPage, '/', admin.email, admin.password);
    await adminPage.getByTestId('whoami').waitFor();
    await adminPage.goto(`${stack.baseUrl}/portal`);
    await adminPage.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(await adminPage.getByTestId('whoami').count()).toBe(0);
    const asAdmin = await adminPage.evaluate(async () => [
      (await fetch('/v1/portal/me')).status,
      (await fetch('/v1/portal/licenses')).status,
    ]);
    expect(asAdmin).toEqual([403, 403]);

    const portalPage = await newPage();
    await signIn(portalPage, '/portal', userA.email, TEST_PASSWORD);
    await portalPage.getByTestId('whoami').waitFor();
    await portalPage.goto(`${stack.baseUrl}/`);
    await portalPage.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(await portalPage.getByTestId('whoami').count()).toBe(0);
    const asCustomer = await portalPage.evaluate(async () => [
      (await fetch('/v1/admin/me')).status,
      (await fetch('/v1/admin/licenses')).status,
    ]);
    expect(asCustomer).toEqual([403, 403]);
  });

  it('a portal user sets up a second factor on the Security page; then signs in with a code from the app', async () => {
    const user = await seedCustomerUser(stack.db.pool, userA.customerId);
    const page = await newPage();
    await signIn(page, '/portal', user.email, TEST_PASSWORD);
    await page.getByRole('link', { name: 'Security' }).click();
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.getByRole('img', { name: 'QR code of your authenticator secret' }).waitFor();
    const secret = await textOf(page.getByTestId('secret'));
    const app = URI.parse(`otpauth://totp/Agentina:${encodeURIComponent(user.email)}?secret=${secret}&issuer=Agentina`);
    await page.getByLabel('Code from the app').fill(app.generate());
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('Your second factor is set up.').waitFor();
    expect((await textOf(page.getByTestId('secret'))).split(/\s+/)).toHaveLength(10);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, '/portal', user.email, TEST_PASSWORD);
    await page.getByRole('alert').filter({ hasText: 'authenticator app' }).waitFor();
    expect(await page.getByTestId('whoami').count()).toBe(0);
    // The confirming code's step is spent: the next step's code signs in.
    await page.getByLabel('Authenticator or recovery code').fill(app.generate({ timestamp: Date.now() + 30_000 }));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('whoami').waitFor();
  });
});
