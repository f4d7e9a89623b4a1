#include "safe_text.hpp"

#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 character at in[i] (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0 when the byte there does not start one.
std::size_t char_length(std::string_view in, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
  const unsigned char b = byte(i);
  if (b < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > in.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string safe_text(std::string_view in, std::size_t max_bytes) {
  std::string out;
  out.reserve(in.size() < max_bytes ? in.size() : max_bytes);
  std::size_t i = 0;
  while (i < in.size()) {
    std::size_t n = char_length(in, i);
    const bool replace = n == 0 || in[i] == '\0';
    const std::size_t out_len = replace ? sizeof kReplacement - 1 : n;
    if (out.size() + out_len > max_bytes) break;
    if (replace) {
      out.append(kReplacement, sizeof kReplacement - 1);
      i += n == 0 ? 1 : n;
    } else {
      out.append(in.data() + i, n);
      i += n;
    }
  }
  return out;
}

}  // namespace gateway
