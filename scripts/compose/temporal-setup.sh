#!/bin/sh
# One-shot job (temporalio/admin-tools): creates the namespace and registers Agentina's
# custom search attributes, so operators can filter lifecycles in Temporal Web.
set -eu
ns="${TEMPORAL_NAMESPACE:-default}"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do sleep 1; done
temporal operator namespace describe --namespace "$ns" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 \
  || temporal operator namespace create --namespace "$ns" --retention 30d --address "$TEMPORAL_ADDRESS"
for attr in LicenseId CustomerId LicenseState; do
  temporal operator search-attribute create --namespace "$ns" --name "$attr" --type Keyword --address "$TEMPORAL_ADDRESS" --yes || true
done
echo "namespace $ns ready with search attributes LicenseId, CustomerId, LicenseState"
