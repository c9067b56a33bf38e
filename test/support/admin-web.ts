import type { Page } from 'playwright-core';
import { createAdmin } from '../../cli/create-admin';
import { testServices } from './app';
import { uniqueEmail } from './identity';
import { createPageTracker, startWebStack, type WebStack } from './web-stack';

/**
 * Registers the hooks of a browser suite against the admin UI: a web stack with one admin, pages
 * tracked for uncaught errors and CSP refusals (none may happen in any test), all closed after.
 */
export function useAdminWeb(label: string, emailPrefix: string) {
  let stack: WebStack | undefined;
  const email = uniqueEmail(emailPrefix);
  const password = 'a long and careful admin password';
  const pages = createPageTracker(() => stack!);
  beforeAll(async () => {
    stack = await startWebStack(label);
    await createAdmin(testServices({ pool: stack.db.pool }).identity.accounts, { email, password });
  });
  afterAll(async () => {
    await pages.closeAll();
    await stack?.close();
  });
  afterEach(() => {
    expect(pages.problems.splice(0)).toEqual([]);
  });
  return {
    email,
    password,
    get stack(): WebStack {
      return stack!;
    },
    newPage: () => pages.newPage(),
    signIn: async (page: Page, pw = password): Promise<void> => {
      await page.goto(`${stack!.baseUrl}/`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(pw);
      await page.getByRole('button', { name: 'Sign in' }).click();
    },
  };
}
