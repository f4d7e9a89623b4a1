#include "secrets.hpp"

#include <memory>

#include "settings.hpp"

namespace gateway::pg {
namespace {

// Loaded lazily so that a bad key file fails the statement that needs it, with a clear error,
// instead of stopping the server.
std::unique_ptr<MasterKey> master_key;
std::unique_ptr<api_key::Hasher> hasher;

const MasterKey& loaded_master_key() {
  if (!master_key) {
    const char* path = settings.master_key_file != nullptr ? settings.master_key_file : "";
    master_key = std::make_unique<MasterKey>(MasterKey::load_file(path));
  }
  return *master_key;
}

}  // namespace

api_key::Hasher& api_key_hasher() {
  if (!hasher) hasher = std::make_unique<api_key::Hasher>(loaded_master_key());
  return *hasher;
}

}  // namespace gateway::pg
