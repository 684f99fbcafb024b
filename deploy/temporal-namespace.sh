#!/bin/sh
# Registers the namespace's custom search attributes that AWFDRS filters incidents by.
set -eu
: "${TEMPORAL_ADDRESS:?}"
namespace="${TEMPORAL_NAMESPACE:-default}"
attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then echo "temporal not healthy after 60 tries" >&2; exit 1; fi
  sleep 2
done
temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$namespace" >/dev/null 2>&1 ||
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$namespace"
for name in TenantId IncidentStatus Severity ErrorCode Vendor SourceWorkflow Signature ParentIncident; do
  temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" -n "$namespace" \
    --name "$name" --type Keyword 2>&1 | grep -v -i "already exists" || true
done
temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" -n "$namespace"
