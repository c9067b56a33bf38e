import type { Principal } from '../../api/auth/access';
import { createTestCustomer } from './license-helpers';
import { startLicenseApiStack, type LicenseApiStack } from './license-api-stack';

export type LicenseApiSuite = {
  /** Who a request's `x-test-as` header names: admin, service, customerA, customerB, agent. */
  principals: Record<string, Principal>;
  /** The Temporal Web address the app links workflows to. */
  uiUrl: string;
  /** Set in beforeAll, so read them inside a hook or a test, not while the describe is collected. */
  stack: LicenseApiStack;
  customerA: string;
  customerB: string;
  call: (
    as: string | null,
    method: 'GET' | 'POST',
    url: string,
    payload?: unknown,
  ) => ReturnType<LicenseApiStack['app']['inject']>;
  /** An ISO date `days` from now (negative: in the past). */
  future: (days: number) => string;
  /** Creates a license for customer A (unless `body` says otherwise) and expects a 201. */
  create: (body: Record<string, unknown>, as?: string) => Promise<{ id: string; state: string; version: number }>;
};

/**
 * The license API stack the license-api*.test.ts files share: registers the beforeAll that starts it
 * with two customers and one principal of each kind, and the afterAll that stops it. One stack per
 * file, so the files can run in parallel.
 */
export function useLicenseApiSuite(label: string): LicenseApiSuite {
  const principals: Record<string, Principal> = {};
  const suite = {
    principals,
    uiUrl: 'http://temporal-ui.example:8233',
    call: (as: string | null, method: 'GET' | 'POST', url: string, payload?: unknown) =>
      suite.stack.app.inject({
        method,
        url,
        ...(as ? { headers: { 'x-test-as': as } } : {}),
        ...(payload !== undefined ? { payload: payload as object } : {}),
      }),
    future: (days: number) => new Date(Date.now() + days * 86400000).toISOString(),
    create: async (body: Record<string, unknown>, as = 'admin') => {
      const res = await suite.call(as, 'POST', '/v1/admin/licenses', {
        customerId: suite.customerA,
        plan: 'pro',
        maxAgents: 2,
        ...body,
      });
      expect(res.statusCode).toBe(201);
      return res.json().license as { id: string; state: string; version: number };
    },
  } as LicenseApiSuite;

  beforeAll(async () => {
    suite.stack = await startLicenseApiStack(label, principals, { TEMPORAL_UI_URL: suite.uiUrl });
    const customerA = (suite.customerA = await createTestCustomer(suite.stack.db.pool, 'Customer A'));
    const customerB = (suite.customerB = await createTestCustomer(suite.stack.db.pool, 'Customer B'));
    principals.admin = { kind: 'admin', id: 'adm_licenseapitester0001', sessionId: 's1' };
    principals.service = { kind: 'service', id: 'svcacct_licenseapitester01' };
    principals.customerA = { kind: 'customer', id: 'usr_customeraaaaaaaaaaaa', customerId: customerA, sessionId: 's2' };
    principals.customerB = { kind: 'customer', id: 'usr_customerbbbbbbbbbbbb', customerId: customerB, sessionId: 's3' };
    principals.agent = {
      kind: 'agent',
      id: 'agt_agentaaaaaaaaaaaaaaaa',
      licenseId: 'lic_xxxxxxxxxxxxxxxxxxxx',
      customerId: customerA,
    };
  });

  afterAll(async () => {
    await suite.stack?.close();
  });

  return suite;
}
