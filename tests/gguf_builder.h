// Test helper: writes GGUF images in memory (header, metadata, tensor table, padding, data) for the
// GGUF reader tests and for the tokenizer tests' hand-made vocabularies.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace jet::test {

// Writes GGUF bytes: header, metadata, tensor table, padding, data.
struct Builder {
  std::vector<uint8_t> b;
  template <class T>
  Builder& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Builder& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Builder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  Builder& key(const std::string& k, uint32_t vtype) { return str(k).put<uint32_t>(vtype); }
  Builder& tensor(const std::string& name, std::vector<uint64_t> ne, jet::gguf::Type t, uint64_t offset) {
    str(name).put<uint32_t>(ne.size());
    for (auto n : ne) put<uint64_t>(n);
    return put<uint32_t>(uint32_t(t)).put<uint64_t>(offset);
  }
  Builder& pad(size_t align = 32) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  jet::gguf::File parse(const std::string& name = "x.gguf") const {
    return jet::gguf::File::parse(b.data(), b.size(), name);
  }
};

// Value type codes of the GGUF spec.
namespace gguf_types {
enum : uint32_t { U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 };
}  // namespace gguf_types

}  // namespace jet::test
