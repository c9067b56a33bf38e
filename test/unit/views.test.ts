import type { SignedLicense } from '../../protocol/license';
import type { LicenseSnapshotView, SignedLicenseView } from '../../protocol/views';
import type { LicenseSnapshot } from '../../workflows/license-contract';

/** True only when A and B are the same shape both ways. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/**
 * The browser reads protocol/views.ts, which may not import zod or node:crypto; where a view
 * restates a shape owned elsewhere, the compiler holds the two together (npm run check).
 */
describe('protocol views', () => {
  it('the signed license view is the signed license schema', () => {
    const same: Same<SignedLicense, SignedLicenseView> = true;
    expect(same).toBe(true);
  });
  it("the lifecycle snapshot view is the workflow's snapshot", () => {
    const same: Same<LicenseSnapshot, LicenseSnapshotView> = true;
    expect(same).toBe(true);
  });
});
