#include "error_bridge.hpp"

#include <new>
#include <stdexcept>

#include "../core/error.hpp"

namespace gateway::pg {
namespace {

char* copy_or_null(const std::string& text) noexcept {
  return text.empty() ? nullptr : pstrdup(text.c_str());
}

}  // namespace

void capture_current_exception(CapturedError& out) noexcept {
  try {
    throw;
  } catch (const PgError& e) {
    out.pg_error = e.data;
  } catch (const gateway::Error& e) {
    out.sqlstate = e.code();
    out.message = pstrdup(e.what());
    out.detail = copy_or_null(e.detail());
    out.hint = copy_or_null(e.hint());
  } catch (const std::bad_alloc&) {
    out.sqlstate = gateway::sqlstate::kOutOfMemory;
    out.message = pstrdup("out of memory in pg_gateway");
  } catch (const std::exception& e) {
    out.sqlstate = gateway::sqlstate::kInternalError;
    out.message = psprintf("pg_gateway internal error: %s", e.what());
  } catch (...) {
    out.sqlstate = gateway::sqlstate::kInternalError;
    out.message = pstrdup("pg_gateway internal error: unknown exception");
  }
}

void report_captured(ErrorData* pg_error, const char* sqlstate, const char* message,
                     const char* detail, const char* hint) {
  if (pg_error != nullptr) ReThrowError(pg_error);
  const char* code = sqlstate != nullptr ? sqlstate : gateway::sqlstate::kInternalError;
  ereport(ERROR, (errcode(MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4])),
                  errmsg_internal("%s", message != nullptr ? message : "pg_gateway error"),
                  detail != nullptr ? errdetail_internal("%s", detail) : 0,
                  hint != nullptr ? errhint("%s", hint) : 0));
  pg_unreachable();
}

}  // namespace gateway::pg
