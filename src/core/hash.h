// Small, portable hashes: the same value on every machine and compiler (no std::hash, no
// implementation-defined distributions), for seeded sampling and content fingerprints.
#pragma once
#include <cstdint>
#include <string>

namespace jet {

// splitmix64's finaliser: a bijective mixer; mix64(seed ^ counter) gives counter-based random draws.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A draw in [0, n) from a 64-bit hash (Lemire's multiply-shift; n > 0).
inline uint64_t hash_below(uint64_t h, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * n) >> 64);
}

// A draw in [0, 1) from a 64-bit hash.
inline double hash_unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// FNV-1a, 64-bit, of bytes.
inline uint64_t fnv1a64(const std::string& s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace jet
