import { explicitTaskFeatures, featureProblems, MAX_FEATURES, type FeatureValue } from '../../protocol';
import { AppError } from '../errors';

/**
 * The features a license is stored and signed with (protocol/entitlements.ts): the default task
 * grant when none are given, else exactly those with unnamed task kinds refused. A documented
 * feature of the wrong type, or more than a document holds, is a 400.
 */
export function licenseFeatures(given: Record<string, FeatureValue> | undefined): Record<string, FeatureValue> {
  const features = explicitTaskFeatures(given);
  const problems = featureProblems(features).map(([name, message]) => ({ path: `features.${name}`, message }));
  if (problems.length > 0)
    throw new AppError('VALIDATION_FAILED', 'A documented feature has a value it cannot take.', problems);
  if (Object.keys(features).length > MAX_FEATURES)
    throw new AppError(
      'VALIDATION_FAILED',
      `A license holds at most ${MAX_FEATURES} features, counting the task kinds written as false.`,
    );
  return features;
}
