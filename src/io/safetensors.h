// safetensors: mmap reader and atomic writer (temp file + rename). Pure C++ (no ATen); the ATen
// bridge is io/tensors.h. Header offsets/sizes are bounds-checked; problems throw
// jet::Error("<file>: <problem>").
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace jet::safetensors {

enum class DType { BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2 };
const char* dtype_name(DType d);   // "F32", ... as in the format
size_t dtype_size(DType d);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class File {
 public:
  static File open(const std::string& path);
  static File parse(const uint8_t* data, size_t size, const std::string& name);  // no copy
  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return meta_; }

 private:
  std::string path_;
  std::shared_ptr<void> mapping_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> meta_;
};

// Writes tensors (data pointers must be valid) to path atomically: path.tmp.<pid>, fsync, rename.
void write(const std::string& path, const std::vector<TensorView>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace jet::safetensors
