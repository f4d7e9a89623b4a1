// The one error type that crosses the src/core boundary. It carries a PostgreSQL SQLSTATE so the
// PostgreSQL shell can report it unchanged, without src/core knowing any PostgreSQL header.
#pragma once

#include <stdexcept>
#include <string>

namespace gateway {

// SQLSTATE codes used by src/core (the PostgreSQL names in comments).
namespace sqlstate {
inline constexpr const char* kInvalidParameterValue = "22023";  // invalid_parameter_value
inline constexpr const char* kConfigFileError = "F0000";        // config_file_error
inline constexpr const char* kUniqueViolation = "23505";       // unique_violation
inline constexpr const char* kInsufficientPrivilege = "42501";  // insufficient_privilege
inline constexpr const char* kInternalError = "XX000";          // internal_error
inline constexpr const char* kOutOfMemory = "53200";            // out_of_memory
}  // namespace sqlstate

class Error : public std::runtime_error {
 public:
  Error(const char* code, const std::string& message, std::string detail = {}, std::string hint = {})
      : std::runtime_error(message),
        code_(code),
        detail_(std::move(detail)),
        hint_(std::move(hint)) {}

  const char* code() const noexcept { return code_; }
  const std::string& detail() const noexcept { return detail_; }
  const std::string& hint() const noexcept { return hint_; }

 private:
  const char* code_;
  std::string detail_;
  std::string hint_;
};

}  // namespace gateway
