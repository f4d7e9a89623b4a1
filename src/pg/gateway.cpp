// Module entry point: checks how the library was loaded, then lets each concern register itself.
#include "callback_listener.hpp"
#include "postgres.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "sync_wake.hpp"
#include "worker.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

extern "C" void _PG_init(void) {
  // pg_upgrade loads libraries to check them; there is nothing for us to do then.
  if (IsBinaryUpgrade) return;

  if (!process_shared_preload_libraries_in_progress) {
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("pg_gateway must be loaded via shared_preload_libraries"),
             errdetail("pg_gateway needs shared memory and a background worker, which can only be "
                       "set up when the server starts."),
             errhint("Add pg_gateway to shared_preload_libraries in postgresql.conf and restart "
                     "the server.")));
  }

  gateway::pg::define_settings();
  gateway::pg::request_shared_memory();
  gateway::pg::install_shmem_hooks();
  gateway::pg::register_worker();
  gateway::pg::register_callback_listener();  // only when gateway.callback_listen is set
  gateway::pg::install_sync_wake_hook();
}
