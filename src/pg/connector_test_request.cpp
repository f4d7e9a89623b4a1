// gateway._connector_test_now(connector uuid): asks the running worker to test a connector right
// away, for gateway.connector_test() waiting on its result. The caller's own transaction cannot
// queue the job (the worker would not see it before the caller commits), so the request goes
// through shared memory and the worker queues the job in a transaction of its own.
#include "error_bridge.hpp"
#include "shared_state.hpp"
#include "uuid.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(pg_gateway_connector_test_now);
}

using namespace gateway::pg;

// False when nobody would answer (no worker, or it serves another database) or too many tests
// wait already: the caller then queues the test through the outbox.
extern "C" Datum pg_gateway_connector_test_now(PG_FUNCTION_ARGS) {
  const gateway::KeyId connector = uuid_to_id(PG_GETARG_DATUM(0));
  return sql_function([&] {
    return BoolGetDatum(worker_running() && worker_serves_this_database() &&
                        request_connector_test(connector));
  });
}
