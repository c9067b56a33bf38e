import { ownFactorSection } from './admin/second-factor';
import { page, type RouteContext } from './shell';

/** #/security in the portal: your own second factor (an authenticator app), set up once. */
export async function portalSecurityView(ctx: RouteContext): Promise<Node> {
  return page(
    'Security',
    await ownFactorSection(
      ctx,
      '/v1/portal',
      'You sign in with a code from your authenticator app, or one of your recovery codes.',
    ),
  );
}
