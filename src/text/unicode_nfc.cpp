#include "text/unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

namespace jet::text {
namespace {

#include "text/unicode_nfc_data.inc"

// Hangul syllables decompose and compose algorithmically (Unicode §3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

int ccc(uint32_t c) {
  auto it = std::lower_bound(std::begin(kNfcCcc), std::end(kNfcCcc), c,
                             [](const uint32_t(&e)[2], uint32_t v) { return e[0] < v; });
  return it != std::end(kNfcCcc) && (*it)[0] == c ? int((*it)[1]) : 0;
}

void decompose(uint32_t c, std::vector<uint32_t>& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const uint32_t s = c - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  auto it = std::lower_bound(std::begin(kNfcDecomp), std::end(kNfcDecomp), c,
                             [](const uint32_t(&e)[3], uint32_t v) { return e[0] < v; });
  if (it != std::end(kNfcDecomp) && (*it)[0] == c)
    out.insert(out.end(), kNfcDecompCps + (*it)[1], kNfcDecompCps + (*it)[1] + (*it)[2]);
  else
    out.push_back(c);
}

// The primary composite of (a, b), or 0.
uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  auto it = std::lower_bound(std::begin(kNfcCompose), std::end(kNfcCompose), std::make_pair(a, b),
                             [](const uint32_t(&e)[3], std::pair<uint32_t, uint32_t> v) {
                               return e[0] < v.first || (e[0] == v.first && e[1] < v.second);
                             });
  return it != std::end(kNfcCompose) && (*it)[0] == a && (*it)[1] == b ? (*it)[2] : 0;
}

uint32_t next_cp(const std::string& s, size_t& i) {
  const auto b = [&](size_t k) { return uint32_t(uint8_t(s[k])); };
  const uint32_t c = b(i);
  if (c < 0x80) return i += 1, c;
  if (c < 0xE0) return i += 2, ((c & 0x1F) << 6) | (b(i - 1) & 0x3F);
  if (c < 0xF0) return i += 3, ((c & 0x0F) << 12) | ((b(i - 2) & 0x3F) << 6) | (b(i - 1) & 0x3F);
  return i += 4, ((c & 0x07) << 18) | ((b(i - 3) & 0x3F) << 12) | ((b(i - 2) & 0x3F) << 6) | (b(i - 1) & 0x3F);
}

}  // namespace

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  }
}

std::string nfc(const std::string& utf8) {
  // U+0300 is the first code point that is not NFC-stable; its UTF-8 lead byte is 0xCC.
  if (std::none_of(utf8.begin(), utf8.end(), [](char ch) { return uint8_t(ch) >= 0xCC; })) return utf8;
  std::vector<uint32_t> d;
  d.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) decompose(next_cp(utf8, i), d);
  // Canonical ordering: each run of non-starters sorted (stably) by combining class.
  std::vector<int> cls(d.size());
  for (size_t i = 0; i < d.size(); ++i) cls[i] = ccc(d[i]);
  for (size_t i = 0; i < d.size();) {
    if (cls[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && cls[j] != 0) ++j;
    std::vector<std::pair<int, uint32_t>> run;
    for (size_t k = i; k < j; ++k) run.push_back({cls[k], d[k]});
    std::stable_sort(run.begin(), run.end(), [](auto& x, auto& y) { return x.first < y.first; });
    for (size_t k = i; k < j; ++k) cls[k] = run[k - i].first, d[k] = run[k - i].second;
    i = j;
  }
  // Canonical composition (UAX #15's sample algorithm): a character joins the last starter unless a
  // character of the same or higher class (or a starter) stands between them.
  std::string out;
  if (d.empty()) return out;
  size_t starter = 0, n = 1;
  int last = cls[0] == 0 ? 0 : 256;
  for (size_t i = 1; i < d.size(); ++i) {
    const int c = cls[i];
    const uint32_t comp = cls[starter] == 0 ? compose(d[starter], d[i]) : 0;
    if (comp && (last < c || last == 0)) {
      d[starter] = comp;
      continue;
    }
    if (c == 0) starter = n;
    last = c;
    d[n] = d[i], cls[n] = c;
    ++n;
  }
  for (size_t i = 0; i < n; ++i) append_utf8(out, d[i]);
  return out;
}

}  // namespace jet::text
