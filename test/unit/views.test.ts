import type { SignedLicense } from '../../protocol/license';
import type { SignedLicenseView } from '../../protocol/views';

/** True only when A and B are the same shape both ways. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/**
 * The browser reads protocol/views.ts, which may not import zod or node:crypto; where a view
 * restates a shape a zod schema owns, the compiler holds the two together (npm run check).
 */
describe('protocol views', () => {
  it('the signed license view is the signed license schema', () => {
    const same: Same<SignedLicense, SignedLicenseView> = true;
    expect(same).toBe(true);
  });
});
