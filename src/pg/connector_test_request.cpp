// gateway._connector_test_now(connector_id uuid) -> boolean: whether the worker takes a connector
// test at once, so connector_test() may wait for its result instead of queueing a job. For now
// it always says no (connector_test queues through the outbox); the shared-memory channel to the
// worker replaces this body.
#include "postgres.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(pg_gateway_connector_test_now);
}

extern "C" Datum pg_gateway_connector_test_now(PG_FUNCTION_ARGS) {
  (void)fcinfo;
  PG_RETURN_BOOL(false);
}
