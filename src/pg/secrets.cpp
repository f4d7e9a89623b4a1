#include "secrets.hpp"

#include <map>
#include <memory>
#include <utility>

#include "../core/envelope.hpp"
#include "../core/error.hpp"
#include "settings.hpp"

namespace gateway::pg {
namespace {

// Credential keys are derived under their own context, so they share nothing with peppers.
constexpr char kCredentialKeyContext[] = "gwcreds1";
constexpr char kHandoffKeyContext[] = "gwkong01";
constexpr char kCallbackKeyContext[] = "gwcallbk";  // 8 characters: crypto_kdf's context size
constexpr char kScopeKeyContext[] = "gwscope1";

// Loaded lazily so that a bad key file fails the statement that needs it, with a clear error,
// instead of stopping the server.
std::unique_ptr<MasterKey> master_key;
std::unique_ptr<MasterKey> previous_master_key;
bool previous_loaded = false;
std::string fingerprint;
std::unique_ptr<api_key::Hasher> hasher;
std::unique_ptr<api_key::Hasher> previous_hasher;
std::string previous_fingerprint;
std::map<std::pair<std::string, std::uint32_t>, SecureBuffer> credential_keys;
std::unique_ptr<SecureBuffer> handoff;
std::unique_ptr<SecureBuffer> callback;
std::unique_ptr<SecureBuffer> scope;

const MasterKey& loaded_master_key() {
  if (!master_key) {
    const char* path = settings.master_key_file != nullptr ? settings.master_key_file : "";
    master_key = std::make_unique<MasterKey>(MasterKey::load_file(path));
    fingerprint = master_key->fingerprint();
  }
  return *master_key;
}

const MasterKey* loaded_previous_master_key() {
  if (!previous_loaded) {
    const char* path = settings.previous_master_key_file;
    if (path != nullptr && path[0] != '\0') {
      previous_master_key = std::make_unique<MasterKey>(MasterKey::load_file(path));
    }
    previous_loaded = true;
  }
  return previous_master_key.get();
}

}  // namespace

api_key::Hasher& api_key_hasher() {
  if (!hasher) hasher = std::make_unique<api_key::Hasher>(loaded_master_key());
  return *hasher;
}

const std::string& master_key_fingerprint() {
  loaded_master_key();
  return fingerprint;
}

api_key::Hasher* previous_api_key_hasher() {
  const MasterKey* previous = loaded_previous_master_key();
  if (previous == nullptr) return nullptr;
  if (!previous_hasher) previous_hasher = std::make_unique<api_key::Hasher>(*previous);
  return previous_hasher.get();
}

const std::string* previous_master_key_fingerprint() {
  const MasterKey* previous = loaded_previous_master_key();
  if (previous == nullptr) return nullptr;
  if (previous_fingerprint.empty()) previous_fingerprint = previous->fingerprint();
  return &previous_fingerprint;
}

const SecureBuffer& credential_key(std::uint32_t key_id, const std::string& master_fingerprint) {
  auto id = std::make_pair(master_fingerprint, key_id);
  auto it = credential_keys.find(id);
  if (it != credential_keys.end()) return it->second;

  const MasterKey* master = nullptr;
  if (master_fingerprint == master_key_fingerprint()) {
    master = &loaded_master_key();
  } else if (const MasterKey* previous = loaded_previous_master_key();
             previous != nullptr && previous->fingerprint() == master_fingerprint) {
    master = previous;
  }
  if (master == nullptr) {
    throw Error(crypto::kMasterKeyChanged,
                "encryption key " + std::to_string(key_id) + " was derived from another master key",
                "It needs the master key with fingerprint " + master_fingerprint +
                    "; the server has " + master_key_fingerprint() + ".",
                "Point gateway.master_key_file (or, while rotating, "
                "gateway.previous_master_key_file) at the master key this data was encrypted "
                "with, and restart the server.");
  }
  return credential_keys.emplace(id, master->derive(kCredentialKeyContext, key_id)).first->second;
}

const SecureBuffer& handoff_key() {
  if (!handoff) handoff = std::make_unique<SecureBuffer>(loaded_master_key().derive(kHandoffKeyContext, 1));
  return *handoff;
}

const SecureBuffer& callback_key() {
  if (!callback) {
    callback = std::make_unique<SecureBuffer>(loaded_master_key().derive(kCallbackKeyContext, 1));
  }
  return *callback;
}

const SecureBuffer& scope_hash_key() {
  if (!scope) scope = std::make_unique<SecureBuffer>(loaded_master_key().derive(kScopeKeyContext, 1));
  return *scope;
}

}  // namespace gateway::pg
