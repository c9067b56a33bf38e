import type { Page } from 'playwright-core';
import { createHash } from 'node:crypto';
import { URI } from 'otpauth';
import { createAdmin } from '../../cli/create-admin';
import { testServices } from '../support/app';
import { uniqueEmail } from '../support/identity';
import { createPageTracker, startWebStack, textOf, type WebStack } from '../support/web-stack';

/** Roles, scoped tokens and the second factor in the admin UI (Debian's Chromium, the real API). */
describe('admin UI: access (browser)', () => {
  let stack: WebStack;
  const email = uniqueEmail('ui-owner');
  const password = 'an owner who sets up a second factor';
  const pages = createPageTracker(() => stack);

  beforeAll(async () => {
    stack = await startWebStack('e2eaccess');
    await createAdmin(testServices({ pool: stack.db.pool }).identity.accounts, { email, password });
  });
  afterAll(async () => {
    await pages.closeAll();
    await stack?.close();
  });
  afterEach(() => {
    expect(pages.problems.splice(0)).toEqual([]);
  });

  async function signIn(page: Page, code?: string): Promise<void> {
    await page.goto(`${stack.baseUrl}/`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Password').fill(password);
    if (code) await page.getByLabel('Authenticator or recovery code').fill(code);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  it('enrols a second factor from the QR code page; then the password alone no longer signs in, a recovery code does', async () => {
    const page = await pages.newPage();
    await signIn(page);
    await page.getByTestId('whoami').waitFor();
    expect(await textOf(page.getByTestId('whoami'))).toContain('(owner)');
    await page.goto(`${stack.baseUrl}/#/security`);
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.getByRole('img', { name: 'QR code of your authenticator secret' }).waitFor();
    const secret = await textOf(page.getByTestId('secret'));
    const app = URI.parse(`otpauth://totp/Agentina:${encodeURIComponent(email)}?secret=${secret}&issuer=Agentina`);
    await page.getByLabel('Code from the app').fill(app.generate());
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('Your second factor is set up.').waitFor();
    const recovery = (await textOf(page.getByTestId('secret'))).split(/\s+/);
    expect(recovery).toHaveLength(10);

    // Signed out, the password alone is not enough; a recovery code is.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page);
    await page.getByRole('alert').filter({ hasText: 'authenticator app' }).waitFor();
    expect(await page.getByTestId('whoami').count()).toBe(0);
    await page.getByLabel('Authenticator or recovery code').fill(recovery[0]!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('whoami').waitFor();
  });

  it('an owner creates a viewer and changes roles; a token is created with its scopes chosen', async () => {
    const page = await pages.newPage();
    // The first test enrolled this owner: a recovery code signs in (each works once).
    await signIn(page, await freshRecoveryCode());
    await page.getByTestId('whoami').waitFor();

    await page.goto(`${stack.baseUrl}/#/admins`);
    const viewerEmail = uniqueEmail('ui-viewer');
    await page.getByLabel('Email', { exact: true }).fill(viewerEmail);
    await page.getByLabel('Role').selectOption('viewer');
    await page.getByRole('button', { name: 'Create admin' }).click();
    await page.getByText(`One-time password for ${viewerEmail}`).waitFor();
    await page.reload();
    const picker = page.getByLabel(`Role of ${viewerEmail}`);
    expect(await picker.inputValue()).toBe('viewer');
    // Listen before choosing: the answer can arrive before a listener added afterwards.
    const changed = page.waitForResponse((r) => r.url().includes('/role') && r.status() === 200);
    await picker.selectOption('operator');
    await changed;
    await page.getByLabel(`Role of ${viewerEmail}`).waitFor();
    expect(await page.getByLabel(`Role of ${viewerEmail}`).inputValue()).toBe('operator');

    await page.goto(`${stack.baseUrl}/#/service-accounts`);
    await page.getByLabel('Name').fill('billing sync');
    await page.getByLabel('licenses:read').check();
    await page.getByLabel('customers:read').check();
    await page.getByRole('button', { name: 'Create service account' }).click();
    const token = await textOf(page.getByTestId('secret'));
    expect(token).toMatch(/^svc_/);
    await page.getByRole('cell', { name: 'customers:read, licenses:read' }).waitFor();
    const res = await fetch(`${stack.baseUrl}/v1/admin/agents`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(403);
  });

  it('a viewer sees every section but no way to change anything', async () => {
    const viewerEmail = uniqueEmail('ui-viewer-reads');
    const viewer = await createAdmin(testServices({ pool: stack.db.pool }).identity.accounts, {
      email: viewerEmail,
      password,
      role: 'viewer',
    });
    expect(viewer.id).toMatch(/^adm_/);
    const page = await pages.newPage();
    await page.goto(`${stack.baseUrl}/`);
    await page.getByLabel('Email', { exact: true }).fill(viewerEmail);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('whoami').waitFor();
    expect(await textOf(page.getByTestId('whoami'))).toContain('(viewer)');
    for (const [hash, heading] of [
      ['#/licenses', 'Licenses'],
      ['#/customers', 'Customers'],
      ['#/tokens', 'Activation tokens'],
      ['#/tasks', 'Tasks'],
      ['#/service-accounts', 'Service accounts'],
      ['#/admins', 'Admins'],
    ] as const) {
      await page.goto(`${stack.baseUrl}/${hash}`);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      expect(await page.locator('main form:not([aria-label^="Filter"])').count()).toBe(0);
      expect(await page.getByRole('button', { name: /^(Create|Revoke|Deactivate|Queue)/ }).count()).toBe(0);
    }
    // The audit log is a viewer's to read.
    await page.goto(`${stack.baseUrl}/#/audit`);
    await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
    expect((await page.locator('main .error').allTextContents()).join('')).toBe('');
  });

  /** Adds a known recovery code for the owner (the first test's codes stayed on its page). */
  async function freshRecoveryCode(): Promise<string> {
    const { rows } = await stack.db.adminPool.query<{ id: string }>('SELECT id FROM admins WHERE email = lower($1)', [
      email,
    ]);
    await stack.db.adminPool.query(
      `INSERT INTO recovery_codes (account_kind, account_id, code_hash) VALUES ('admin', $1, $2)`,
      [rows[0]!.id, createHash('sha256').update('abcdefghjk').digest('hex')],
    );
    return 'abcde-fghjk';
  }
});
