// Who is asking: see request_identity.cpp.
#pragma once

namespace gateway::pg {

// True while a superuser session with row_security = off (pg_restore, a replayed pg_dump) makes
// the changes: they are not audited a second time.
bool restoring();

}  // namespace gateway::pg
