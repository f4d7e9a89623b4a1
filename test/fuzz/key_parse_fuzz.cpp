// libFuzzer target: the API key parser must never crash, read out of bounds or accept a string
// whose checksum does not match. Build with -DGATEWAY_FUZZ=ON and clang++.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/key_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = gateway::api_key::parse(text);
  if (parsed) {
    namespace ak = gateway::api_key;
    std::string_view body = text.substr(0, ak::kKeyLength - ak::kChecksumLength);
    auto checksum = ak::decode_base62(text.substr(ak::kKeyLength - ak::kChecksumLength));
    if (!checksum || *checksum != ak::crc32(body) || parsed->prefix.size() != ak::kPrefixLength) {
      std::abort();
    }
  }
  return 0;
}
