/** Release-version precedence lives in protocol/ (the control plane compares versions too). */
export { compareReleaseVersions, isReleaseVersion } from '../protocol/release-version';
