/** Values the global setup publishes to every test file. */
export function testEnv(
  name:
    | 'AGENTINA_TEST_PG_ADMIN_URL'
    | 'AGENTINA_TEST_TEMPORAL_ADDRESS'
    | 'AGENTINA_TEST_TEMPORAL_CLI'
    | 'AGENTINA_TEST_TIME_SKIPPING_SERVER'
    | 'AGENTINA_TEST_WORKFLOW_BUNDLE'
    | 'AGENTINA_TEST_PYTHON_TUF'
    | 'AGENTINA_TEST_PYTHON_PYOTP'
    | 'AGENTINA_TEST_PYTHON_WEBHOOKS',
): string {
  const v = process.env[name];
  if (!v)
    throw new Error(`${name} is not set: run tests through jest (npm test), whose global setup starts the servers`);
  return v;
}
