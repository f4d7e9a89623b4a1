// Who is asking: the platform user of the request (JWT sub) and the role the request runs as.
// Trust comes from that role (a superuser, a BYPASSRLS role such as Supabase's service_role, or a
// role with the privileges of the schema's owner), never from a missing claim.
#include <string>

#include "request_identity.hpp"

#include "../core/request_claims.hpp"
#include "error_bridge.hpp"
#include "postgres.hpp"
#include "uuid.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/rls.h"
#include "utils/syscache.h"
}

using namespace gateway;
using namespace gateway::pg;

namespace gateway::pg {

// A session replaying a dump: pg_dump and pg_restore always turn row_security off, and only a
// superuser can restore an extension that needs one. Both must hold: any role may turn
// row_security off for itself, and must not silence the audit log by doing so.
bool restoring() { return !row_security && superuser_arg(GetOuterUserId()); }

}  // namespace gateway::pg

extern "C" {
PG_FUNCTION_INFO_V1(gateway_restoring);
PG_FUNCTION_INFO_V1(gateway_current_user_id);
PG_FUNCTION_INFO_V1(gateway_request_role);
PG_FUNCTION_INFO_V1(gateway_caller_is_trusted);
}

// gateway.current_user_id() -> uuid: the request's sub, NULL when there is none. Raises 28000 for
// claims that are not a JSON object and for a sub that is not a uuid.
extern "C" Datum gateway_current_user_id(PG_FUNCTION_ARGS) {
  const char* claims = GetConfigOption("request.jwt.claims", true, false);
  const char* legacy = GetConfigOption("request.jwt.claim.sub", true, false);
  claims::Identity id = claims::identify(claims != nullptr ? claims : "", legacy != nullptr ? legacy : "");
  switch (id.subject) {
    case claims::Subject::kAbsent:
      PG_RETURN_NULL();
    case claims::Subject::kUser:
      return id_to_uuid(id.user);
    case claims::Subject::kMalformedClaims:
      ereport(ERROR, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
                      errmsg("request.jwt.claims is not a JSON object"),
                      errhint("Set request.jwt.claims to the verified JWT payload, e.g. {\"sub\": \"<user uuid>\", \"role\": \"authenticated\"}.")));
    case claims::Subject::kNotAUuid:
      ereport(ERROR, (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
                      errmsg("the request's JWT sub is not a uuid"),
                      errdetail("pg_gateway identifies platform users by the uuid in the sub claim."),
                      errhint("Issue JWTs whose sub is the user's uuid (as Supabase Auth does).")));
  }
  PG_RETURN_NULL();
}

// gateway._request_role() -> name: the role the request runs as (SET ROLE, or the login role),
// whatever SECURITY DEFINER function it is in now.
extern "C" Datum gateway_request_role(PG_FUNCTION_ARGS) {
  const char* name = GetUserNameFromId(GetOuterUserId(), true);
  if (name == nullptr) PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(name));
}

// gateway._caller_is_trusted() -> boolean: the request's role is a superuser, bypasses RLS, or
// has the privileges of the owner of schema gateway (the extension's owner).
extern "C" Datum gateway_caller_is_trusted(PG_FUNCTION_ARGS) {
  Oid role = GetOuterUserId();
  if (superuser_arg(role) || has_bypassrls_privilege(role)) PG_RETURN_BOOL(true);
  Oid schema = get_namespace_oid("gateway", false);
  HeapTuple tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(schema));
  if (!HeapTupleIsValid(tuple)) PG_RETURN_BOOL(false);
  Oid owner = reinterpret_cast<Form_pg_namespace>(GETSTRUCT(tuple))->nspowner;
  ReleaseSysCache(tuple);
  PG_RETURN_BOOL(has_privs_of_role(role, owner));
}

// gateway._restoring() -> boolean: changes now are a restore's replay (see restoring()); the audit
// triggers write nothing for them, since the restored audit log already holds their records.
extern "C" Datum gateway_restoring(PG_FUNCTION_ARGS) { PG_RETURN_BOOL(restoring()); }
