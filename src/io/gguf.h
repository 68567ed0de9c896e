// GGUF (v2/v3) reader: metadata, tensor table and dequantisation. Pure C++ (no ATen), so that the
// header parser can be fuzzed on its own. Every offset and size read from the file is bounds-checked;
// problems throw jet::Error("<file>: <problem>").
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::gguf {

// ggml tensor types (values as in the GGUF spec). Every type listed parses (its block size is known);
// type_supported() says which ones dequantize() handles.
enum class Type : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

const char* type_name(Type t);           // "Q4_K", ...; "unknown" for others
bool type_supported(Type t);             // dequantize() handles it
int64_t type_block_elems(Type t);        // elements per block (1 for plain types); 0 if unknown
int64_t type_block_bytes(Type t);        // bytes per block; 0 if unknown

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // row-major, outermost first (GGUF ne[] reversed), e.g. [out, in]
  Type type;
  uint64_t offset;             // absolute byte offset in the file
  uint64_t nbytes;
  int64_t numel() const;
};

class File {
 public:
  // Maps the file read-only and parses it.
  static File open(const std::string& path);
  // Parses an in-memory image (not copied: must outlive the File). Used by the fuzzer and tests.
  static File parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }                   // bytes in the file image
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }      // general.alignment, default 32
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  // All key/value pairs; GGUF arrays become JSON arrays, integers JSON integers.
  const nlohmann::json& metadata() const { return meta_; }
  bool has(const std::string& key) const { return meta_.contains(key); }
  // Typed getters: throw "<file>: metadata key 'k' missing" or "... has type X, expected Y".
  // get_float also accepts integers; get_int rejects floats, bools and values beyond int64.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const uint8_t* data(const TensorInfo& t) const { return base_ + t.offset; }
  // Dequantises the whole tensor into out[numel] (fp32), on this thread. Throws for unsupported types.
  void dequantize(const TensorInfo& t, float* out) const;

 private:
  std::string path_;
  std::shared_ptr<void> mapping_;  // keeps the mmap alive (null for parse())
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  nlohmann::json meta_ = nlohmann::json::object();
  std::vector<TensorInfo> tensors_;
};

// Dequantises n elements (a multiple of the block size) of type t from src into dst; src holds
// n / type_block_elems(t) blocks. Throws for unsupported types and a bad n.
void dequantize_row(Type t, const uint8_t* src, float* dst, int64_t n);

}  // namespace jet::gguf
