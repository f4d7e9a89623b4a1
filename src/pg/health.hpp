// The operator's checks. gateway._health_internal() (C) reports what only C can see: the master key
// files' owner and mode (with the same code that loads them), whether the worker runs, and what
// the worker knows of each target's reachability. gateway._health_checks() (SQL) adds the logging
// settings and the job queue, and gateway.health shows it all. The worker runs the same query at
// start and after each reload and logs each problem once as a WARNING.
#pragma once

namespace gateway::pg {

// The worker's self-check: one transaction, one WARNING per problem not already reported (a
// problem that goes away and comes back is reported again). Never raises.
void run_self_check();

}  // namespace gateway::pg
