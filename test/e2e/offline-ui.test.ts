import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hashFingerprint, type RawFingerprint } from '../../agent/fingerprint-source';
import {
  FINGERPRINT_COMPONENTS,
  OFFLINE_REQUEST_FORMAT,
  offlineActivationResponseSchema,
  offlineRequestDigest,
  statusFileSchema,
  type OfflineActivationRequest,
} from '../../protocol';
import { createCustomer, createLicense } from '../support/agent-server-fixtures';
import { useAdminWeb } from '../support/admin-web';
import { eventually } from '../support/license-helpers';

/** Air-gapped activation and status files in the admin UI, in Debian's Chromium against the real stack. */
describe('offline activation (browser)', () => {
  const ui = useAdminWeb('e2eoffline', 'ui-offline');

  function agentRequest(tokenId: string): OfflineActivationRequest {
    const salt = randomBytes(24).toString('base64url');
    return {
      format: OFFLINE_REQUEST_FORMAT,
      requestId: randomBytes(24).toString('base64url'),
      tokenId,
      publicKey: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      fingerprint: {
        salt,
        components: hashFingerprint(
          salt,
          Object.fromEntries(FINGERPRINT_COMPONENTS.map((c) => [c, `${c}-of-this-machine`])) as RawFingerprint,
        ),
      },
      agentVersion: '0.1.0',
      createdAt: new Date().toISOString(),
    };
  }

  it('turns a pasted request and its token into a response file, then issues a status file on the agent page', async () => {
    const customerId = await createCustomer(ui.stack.db.pool);
    const licenseId = await createLicense(ui.stack.db.pool, customerId);
    const page = await ui.newPage();
    await ui.signIn(page);
    await page.getByTestId('whoami').waitFor();

    await page.getByRole('navigation').getByRole('link', { name: 'Activation tokens' }).click();
    const issue = page.getByRole('form', { name: 'New activation token' });
    await issue.getByLabel('License').selectOption(licenseId);
    await issue.getByRole('button', { name: 'Create activation token' }).click();
    const token = (await page.getByTestId('secret').textContent())!;
    const { rows } = await ui.stack.db.pool.query<{ id: string }>(
      'SELECT id FROM activation_tokens WHERE license_id = $1',
      [licenseId],
    );
    const request = agentRequest(rows[0]!.id);

    const offline = page.getByRole('form', { name: 'Offline activation' });
    await offline.getByRole('textbox', { name: /Request file/ }).fill(JSON.stringify(request));
    await offline.getByLabel(/Activation token/).fill(token);
    await offline.getByRole('button', { name: 'Make response file' }).click();
    const link = page.getByTestId('download').first();
    await link.waitFor();
    // The spent token does not stay on the form.
    expect(await offline.getByLabel(/Activation token/).inputValue()).toBe('');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const response = offlineActivationResponseSchema.parse(JSON.parse(readFileSync(await download.path(), 'utf8')));
    expect(response.binding.payload.requestDigest).toBe(offlineRequestDigest(request));
    expect(JSON.stringify(response)).not.toContain(token);
    const agentId = response.activation.agentId;

    // The same token again, the request uploaded as a file this time: refused as the API says it.
    const second = JSON.stringify(agentRequest(rows[0]!.id));
    await offline
      .getByLabel('Request file to upload')
      .setInputFiles({ name: 'request.json', mimeType: 'application/json', buffer: Buffer.from(second) });
    await eventually(
      () => offline.getByRole('textbox', { name: /Request file/ }).inputValue(),
      (v) => v === second,
      10_000,
      'the uploaded request in the form',
    );
    await offline.getByLabel(/Activation token/).fill(token);
    await offline.getByRole('button', { name: 'Make response file' }).click();
    await offline.getByRole('alert').filter({ hasText: 'already been used' }).waitFor();

    await page.goto(`${ui.stack.baseUrl}/#/agents/${agentId}`);
    const statusForm = page.getByRole('form', { name: 'Status file' });
    await statusForm.getByLabel(/valid for/).fill('45');
    await statusForm.getByRole('button', { name: 'Issue status file' }).click();
    const statusLink = page.getByTestId('download').first();
    await statusLink.waitFor();
    const [statusDownload] = await Promise.all([page.waitForEvent('download'), statusLink.click()]);
    const file = statusFileSchema.parse(JSON.parse(readFileSync(await statusDownload.path(), 'utf8')));
    expect(file.status.payload).toMatchObject({ agentId, licenseId, graceDays: 45, good: true });
  });
});
