// SQL-callable credential encryption: encrypt_credentials, decrypt_credentials, and the helpers
// key rotation and re-encryption use. Plaintext exists only in memory here: it is wiped as soon
// as it has been sealed or turned into the jsonb handed back to the caller.
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "../core/envelope.hpp"
#include "../core/error.hpp"
#include "credentials.hpp"
#include "encryption_keys.hpp"
#include "error_bridge.hpp"
#include "secrets.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "uuid.hpp"

extern "C" {
#include "pgstat.h"
#include "commands/dbcommands.h"
#include "utils/jsonb.h"
}

namespace gateway::pg {
namespace {

// Decryptions are audited by the worker, which writes only in gateway.database: in any other
// database (one renamed from it, or a changed setting) a decryption would go unaudited, so it is
// refused before anything is queued, and no foreign event can clog the queue the worker's own
// database needs.
void require_worker_database() {
  if (!worker_serves_this_database()) {
    throw Error("55000", "credentials were not decrypted: the pg_gateway worker does not serve this database",
                "Decryptions are audited by the worker, which writes audit records only in "
                "gateway.database (\"" + std::string(settings.database != nullptr ? settings.database : "") +
                    "\").",
                "Use the extension in that database, or set gateway.database to this one and "
                "restart the server.");
  }
}

crypto::EnvelopeView parse_or_throw(struct varlena* ciphertext) {
  auto view = crypto::parse_envelope(reinterpret_cast<const std::uint8_t*>(VARDATA_ANY(ciphertext)),
                                     VARSIZE_ANY_EXHDR(ciphertext));
  if (!view) {
    throw Error(crypto::kDecryptFailed, "could not decrypt credentials",
                "The value is not a pg_gateway credential envelope (too short or an unknown "
                "format version).",
                "Pass a value produced by gateway.encrypt_credentials().");
  }
  return *view;
}

// The key that sealed `envelope`, checked: known, not retired, derivable.
const SecureBuffer& key_for(const crypto::EnvelopeView& envelope) {
  std::optional<EncryptionKey> key = find_encryption_key(envelope.key_id);
  if (!key) {
    throw Error(crypto::kUnknownKeyId,
                "credentials were encrypted with unknown encryption key " +
                    std::to_string(envelope.key_id),
                "gateway.encryption_keys has no such key.",
                "Restore the gateway.encryption_keys row from the database this value came from.");
  }
  if (key->state == "retired") {
    throw Error(crypto::kKeyRetired,
                "encryption key " + std::to_string(key->id) + " is retired",
                "Retired keys no longer decrypt.",
                "Re-encrypt before retiring keys: CALL gateway.reencrypt_credentials();");
  }
  return credential_key(key->id, key->master_fingerprint);
}

// Both arguments, detoasted inside pg_call (detoasting allocates and may raise). Jsonb needs the
// full header, the other types are read in their packed form.
struct Arguments {
  struct varlena* value;
  text* context;
};

Arguments detoasted_arguments(FunctionCallInfo fcinfo, bool packed_value) {
  Arguments args{};
  pg_call([&] {
    Datum value = PG_GETARG_DATUM(0);
    args.value = packed_value ? PG_DETOAST_DATUM_PACKED(value) : PG_DETOAST_DATUM(value);
    args.context = PG_GETARG_TEXT_PP(1);
  });
  return args;
}

void require_args(FunctionCallInfo fcinfo, const char* what) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) {
    throw Error("22004", std::string(what) + " must not be null",
                "Both the value and its context are required.",
                "Pass the context the value belongs to, e.g. the connector id.");
  }
}

// Queues the audit record of a decryption for the worker, so it survives a rollback of the
// caller's transaction. Refuses (raises) rather than decrypt unaudited when the queue is full.
void audit_decrypt(FunctionCallInfo fcinfo, bool for_connector, std::string_view context,
                   std::uint32_t key_id) {
  AuditEvent event{};
  event.at = GetCurrentTimestamp();
  event.database = MyDatabaseId;
  event.role = GetOuterUserId();
  event.key_number = static_cast<std::int32_t>(key_id);
  if (for_connector) {
    event.kind = AuditKind::kConnectorDecrypted;
    if (!PG_ARGISNULL(2)) {
      event.has_object = true;
      event.object_id = uuid_to_id(PG_GETARG_DATUM(2));
    }
    if (!PG_ARGISNULL(3)) {
      event.has_project = true;
      event.project_id = uuid_to_id(PG_GETARG_DATUM(3));
    }
    if (!PG_ARGISNULL(4)) {
      event.has_actor = true;
      event.actor_id = uuid_to_id(PG_GETARG_DATUM(4));
    }
  } else {
    event.kind = AuditKind::kCredentialsDecrypted;
    std::size_t n = std::min(context.size(), sizeof(event.label) - 1);
    std::memcpy(event.label, context.data(), n);
  }
  require_worker_database();
  // Durable: no worker, no record, no plaintext; say so now rather than after the timeout.
  const bool durable = settings.audit_decrypt_durable;
  if (durable && !worker_running()) {
    throw Error("55000", "credentials were not decrypted: the pg_gateway worker is not running",
                "gateway.audit_decrypt_durable is on, so a decryption returns only after the "
                "worker has committed its audit record.",
                "Start the server with pg_gateway in shared_preload_libraries and check the "
                "server log for the worker (backend_type 'pg_gateway worker'), or turn "
                "gateway.audit_decrypt_durable off.");
  }
  AuditTicket ticket;
  AuditTicket* wanted = durable ? &ticket : nullptr;
  // A full queue is back-pressure: wait (interruptibly) for the worker to write it, up to 5 s.
  bool queued = queue_audit(event, /*required=*/true, wanted);
  for (int attempt = 0; !queued && attempt < 500; ++attempt) {
    pg_call([] {
      (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10L,
                       PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
      CHECK_FOR_INTERRUPTS();
    });
    queued = queue_audit(event, /*required=*/true, wanted);
  }
  if (!queued) {
    throw Error("53000", "the audit queue is full; credentials were not decrypted",
                "pg_gateway records every decryption before returning it, and its queue has "
                "stayed full for 5 seconds.",
                "Check that the pg_gateway worker is running (pg_stat_activity, backend_type "
                "'pg_gateway worker') and connected to gateway.database.");
  }
  if (!durable) return;
  AuditWait outcome = AuditWait::kCommitted;
  const int timeout_ms = settings.audit_decrypt_timeout_ms;
  pg_call([&] { outcome = wait_audit_committed(ticket, timeout_ms); });
  if (outcome == AuditWait::kTimedOut) {
    throw Error("55000",
                "credentials were not decrypted: the pg_gateway worker did not confirm the audit "
                "record within gateway.audit_decrypt_timeout (" + std::to_string(timeout_ms) +
                    " ms)",
                "gateway.audit_decrypt_durable is on, so a decryption returns only after the "
                "worker has committed its audit record. The record stays queued.",
                "Check that the pg_gateway worker is running and not blocked (pg_stat_activity, "
                "backend_type 'pg_gateway worker'), then retry.");
  }
  if (outcome == AuditWait::kLost) {
    throw Error("55000", "credentials were not decrypted: the audit record could not be written",
                "The pg_gateway worker gave up on a batch of audit records that may hold this "
                "one (the server log says why).",
                "Check that pg_gateway is created in the database named by gateway.database and "
                "that gateway.audit_log accepts inserts, then retry.");
  }
}

}  // namespace
}  // namespace gateway::pg

using namespace gateway;
using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_encrypt_credentials);
PG_FUNCTION_INFO_V1(gateway_decrypt_credentials);
PG_FUNCTION_INFO_V1(gateway_decrypt_connector);
PG_FUNCTION_INFO_V1(gateway_reencrypt);
PG_FUNCTION_INFO_V1(gateway_master_key_fingerprint);
}

// encrypt_credentials(credentials jsonb, context text) -> bytea
extern "C" Datum gateway_encrypt_credentials(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    require_args(fcinfo, "credentials and context");
    EncryptionKey key = active_encryption_key();
    const SecureBuffer& sealing_key = credential_key(key.id, key.master_fingerprint);
    Arguments args = detoasted_arguments(fcinfo, /*packed_value=*/false);
    char* json = nullptr;
    Datum out = 0;
    pg_call([&] {
      auto* credentials = reinterpret_cast<Jsonb*>(args.value);
      json = JsonbToCString(nullptr, &credentials->root, VARSIZE(credentials));
    });
    std::size_t json_len = std::strlen(json);
    std::vector<std::uint8_t> sealed = crypto::seal(
        sealing_key, key.id, std::string_view(json, json_len), text_view(args.context));
    sodium_memzero(json, json_len);
    pfree(json);
    pg_call([&] { out = PointerGetDatum(bytes_to_bytea(sealed.data(), sealed.size())); });
    return out;
  });
}

namespace {

// Opens the envelope in argument 0 for the context in argument 1 and returns the jsonb.
Datum decrypt_to_jsonb(FunctionCallInfo fcinfo, bool for_connector) {
  return sql_function([&]() -> Datum {
    require_args(fcinfo, "ciphertext and context");
    Arguments args = detoasted_arguments(fcinfo, /*packed_value=*/true);
    crypto::EnvelopeView envelope = parse_or_throw(args.value);
    std::string_view context = text_view(args.context);
    const SecureBuffer& key = key_for(envelope);

    std::size_t len = crypto::plaintext_size(envelope);
    auto* plain = static_cast<std::uint8_t*>(palloc(len + 1));
    crypto::open_into(key, envelope, context, plain);  // wipes `plain` itself if it throws
    plain[len] = '\0';
    Datum out = 0;
    std::string failure;
    try {
      pg_call([&] { out = DirectFunctionCall1(jsonb_in, CStringGetDatum(reinterpret_cast<char*>(plain))); });
    } catch (const PgError&) {
      failure = "the decrypted value is not valid JSON";
    }
    sodium_memzero(plain, len);
    pfree(plain);
    if (!failure.empty()) throw Error(crypto::kDecryptFailed, failure);
    try {
      audit_decrypt(fcinfo, for_connector, context, envelope.key_id);
    } catch (...) {
      // Not audited (in durable mode: not confirmed), so not returned: wipe it before it is freed.
      auto* value = reinterpret_cast<struct varlena*>(DatumGetPointer(out));
      sodium_memzero(value, VARSIZE(value));
      throw;
    }
    return out;
  });
}

}  // namespace

SecureBuffer gateway::pg::open_sealed(const std::string& envelope, const std::string& context) {
  auto view = crypto::parse_envelope(reinterpret_cast<const std::uint8_t*>(envelope.data()), envelope.size());
  if (!view) {
    throw Error(crypto::kDecryptFailed, "could not decrypt credentials",
                "The value is not a pg_gateway credential envelope.", "");
  }
  const SecureBuffer& key = key_for(*view);
  SecureBuffer plain(crypto::plaintext_size(*view) + 1);
  crypto::open_into(key, *view, context, plain.data());
  plain.truncate(crypto::plaintext_size(*view));
  return plain;
}

// decrypt_credentials(ciphertext bytea, context text) -> jsonb; every call is audited.
extern "C" Datum gateway_decrypt_credentials(PG_FUNCTION_ARGS) { return decrypt_to_jsonb(fcinfo, false); }

// _decrypt_connector(ciphertext, context, connector_id, project_id, actor) -> jsonb, audited as
// a connector decryption (for connector_credentials).
extern "C" Datum gateway_decrypt_connector(PG_FUNCTION_ARGS) { return decrypt_to_jsonb(fcinfo, true); }

// _reencrypt(ciphertext bytea, context text) -> bytea under the active key, or NULL when the value
// cannot be opened (so one damaged row does not stop a re-encryption run). The plaintext never
// leaves this function: re-encryption does not expose it to SQL or to triggers.
extern "C" Datum gateway_reencrypt(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    require_args(fcinfo, "ciphertext and context");
    EncryptionKey active = active_encryption_key();
    Arguments args = detoasted_arguments(fcinfo, /*packed_value=*/true);
    std::string_view context = text_view(args.context);
    std::optional<crypto::EnvelopeView> envelope;
    std::optional<SecureBuffer> opened;
    try {
      envelope = parse_or_throw(args.value);
      if (envelope->key_id == active.id) return PG_GETARG_DATUM(0);
      opened = crypto::open(key_for(*envelope), *envelope, context);
    } catch (const Error& e) {
      if (std::strncmp(e.code(), "GW", 2) != 0) throw;
      fcinfo->isnull = true;
      return Datum(0);
    }
    const SecureBuffer& plain = *opened;
    std::vector<std::uint8_t> sealed = crypto::seal(
        credential_key(active.id, active.master_fingerprint), active.id,
        std::string_view(reinterpret_cast<const char*>(plain.data()), plain.size()), context);
    Datum out = 0;
    pg_call([&] { out = PointerGetDatum(bytes_to_bytea(sealed.data(), sealed.size())); });
    return out;
  });
}

// _master_key_fingerprint() -> text: the public fingerprint of the current master key.
extern "C" Datum gateway_master_key_fingerprint(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    const std::string& fingerprint = master_key_fingerprint();
    Datum out = 0;
    pg_call([&] { out = PointerGetDatum(cstring_to_text(fingerprint.c_str())); });
    return out;
  });
}
