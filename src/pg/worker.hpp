// The pg_gateway background worker: one per cluster, connected to gateway.database.
#pragma once

namespace gateway::pg {

void register_worker();  // from _PG_init

}  // namespace gateway::pg
