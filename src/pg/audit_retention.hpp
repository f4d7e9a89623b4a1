// The worker's audit retention duty (gateway.audit_retention): deletes audit records older than
// the setting in bounded batches, one short transaction each, through gateway._audit_prune (so
// each batch is itself audited). At start, after the setting changes, then every 10 minutes.
#pragma once

namespace gateway::pg {

// Milliseconds until the next batch is due; -1: retention is off.
long audit_retention_wait_ms();
// Runs one batch when due. Failures are logged once per run of failures; never raises a
// PostgreSQL error (C++ exceptions: the caller's guard).
void apply_audit_retention();

}  // namespace gateway::pg
