// libFuzzer target for the API key parser. Two properties:
//  1. parse() never crashes or reads out of bounds, and accepts only strings whose checksum and
//     shape hold;
//  2. any 59-character body built from the input, given its checksum, is accepted: parse and the
//     generator agree on the format.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DGATEWAY_FUZZ=ON; seeds in test/fuzz/corpus/key_parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/key_format.hpp"

namespace ak = gateway::api_key;

namespace {

void check_parse_is_strict(std::string_view text) {
  auto parsed = ak::parse(text);
  if (!parsed) return;
  std::string_view body = text.substr(0, ak::kKeyLength - ak::kChecksumLength);
  auto checksum = ak::decode_base62(text.substr(ak::kKeyLength - ak::kChecksumLength));
  if (text.size() != ak::kKeyLength || text.substr(0, 3) != "gw_" || text[15] != '_' ||
      !checksum || *checksum != ak::crc32(body) || parsed->prefix != text.substr(3, 12)) {
    std::abort();
  }
}

void check_checksummed_body_is_accepted(const std::uint8_t* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string key = "gw_";
  for (std::size_t i = 0; i < ak::kPrefixLength + ak::kSecretLength; ++i) {
    if (i == ak::kPrefixLength) key.push_back('_');
    key.push_back(kAlphabet[(i < size ? data[i] : i) % 62]);
  }
  key += ak::encode_base62_fixed(ak::crc32(key), ak::kChecksumLength);
  if (!ak::parse(key)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_parse_is_strict(std::string_view(reinterpret_cast<const char*>(data), size));
  check_checksummed_body_is_accepted(data, size);
  return 0;
}
