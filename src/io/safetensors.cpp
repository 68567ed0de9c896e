// safetensors reader (mmap, every header field bounds-checked) and atomic writer. Format: u64 LE header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}},
// then the data buffer that the offsets index.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/mmap.h"
#include "core/shape.h"

namespace jet::safetensors {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},       {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},   {DType::U16, "U16", 2},     {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},   {DType::I64, "I64", 8},     {DType::U64, "U64", 8},
    {DType::F16, "F16", 2},   {DType::BF16, "BF16", 2},   {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

constexpr uint64_t kMaxHeaderBytes = 100000000;  // the reference implementation's limit

const DTypeInfo& info(DType d) {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i;
  JET_FAIL("safetensors: invalid dtype enum {}", static_cast<int>(d));
}

}  // namespace

const char* dtype_name(DType d) { return info(d).name; }
size_t dtype_size(DType d) { return info(d).size; }

File File::open(const std::string& path) {
  MappedFile m = map_file(path);
  File f = parse(m.data, m.size, path);
  f.mapping_ = std::move(m.mapping);
  return f;
}

File File::parse(const uint8_t* data, size_t size, const std::string& name) {
  File f;
  f.path_ = name;
  JET_CHECK(size >= 8, "{}: truncated safetensors file ({} bytes, no header)", name, size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  JET_CHECK(n <= size - 8, "{}: truncated safetensors file (header of {} bytes, file has {})", name,
            n, size);
  JET_CHECK(n <= kMaxHeaderBytes, "{}: safetensors header of {} bytes (at most {})", name, n, kMaxHeaderBytes);
  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  // The JSON parser would take a NUL byte for the end of its input and ignore what follows; valid JSON
  // never holds one (strings escape control characters).
  JET_CHECK(std::memchr(hbegin, 0, n) == nullptr, "{}: safetensors header holds a NUL byte", name);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hbegin, hbegin + n);
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: malformed safetensors header ({})", name, e.what());
  }
  JET_CHECK(header.is_object(), "{}: safetensors header is not a JSON object", name);
  const uint8_t* buf = data + 8 + n;
  const size_t buf_size = size - 8 - n;

  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [begin, end) of each tensor, for the layout rules
  for (const auto& [key, val] : header.items()) {
    if (key == "__metadata__") {
      JET_CHECK(val.is_object(), "{}: __metadata__ is not an object", name);
      for (const auto& [mk, mv] : val.items()) {
        JET_CHECK(mv.is_string(), "{}: __metadata__ value '{}' is not a string", name, mk);
        f.meta_[mk] = mv.get<std::string>();
      }
      continue;
    }
    JET_CHECK(val.is_object() && val.contains("dtype") && val.contains("shape") &&
                  val.contains("data_offsets"),
              "{}: tensor '{}' lacks dtype/shape/data_offsets", name, key);
    TensorView v;
    v.name = key;
    const auto& dt = val["dtype"];
    JET_CHECK(dt.is_string(), "{}: tensor '{}' dtype is not a string", name, key);
    const auto* it = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                  [&](const DTypeInfo& i) { return dt.get<std::string>() == i.name; });
    JET_CHECK(it != std::end(kDTypes), "{}: tensor '{}' has unknown dtype '{}'", name, key,
              dt.get<std::string>());
    v.dtype = it->dtype;
    const auto& shape = val["shape"];
    JET_CHECK(shape.is_array(), "{}: tensor '{}' shape is not an array", name, key);
    uint64_t numel = 1;
    for (const auto& d : shape) {
      JET_CHECK(d.is_number_unsigned(), "{}: tensor '{}' has a bad dimension {}", name, key,
                d.dump());
      uint64_t x = d.get<uint64_t>();
      JET_CHECK(x <= (uint64_t(1) << 40) && (x == 0 || numel <= (uint64_t(1) << 50) / x),
                "{}: tensor '{}' shape is too large", name, key);
      numel *= x;
      v.shape.push_back(static_cast<int64_t>(x));
    }
    const auto& off = val["data_offsets"];
    JET_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                  off[1].is_number_unsigned(),
              "{}: tensor '{}' data_offsets must be two unsigned integers", name, key);
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    JET_CHECK(b <= e, "{}: tensor '{}' data_offsets [{}, {}] are reversed", name, key, b, e);
    JET_CHECK(e <= buf_size,
              "{}: truncated safetensors file (tensor '{}' ends at byte {}, data has {})", name,
              key, e, buf_size);
    JET_CHECK(e - b == numel * it->size,
              "{}: tensor '{}' has {} bytes, shape {} of {} needs {}", name, key, e - b,
              shape_str(v.shape), it->name, numel * it->size);
    v.data = buf + b;
    v.nbytes = e - b;
    f.tensors_.push_back(std::move(v));
    spans.emplace_back(b, e);
  }
  // As the reference implementation: the tensors tile the data buffer exactly, in offset order from 0
  // to its end (no gap, no overlap, no trailing bytes). A header length that is off by even one byte
  // (JSON still valid thanks to padding) therefore shifts the buffer and is rejected.
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& [b, e] : spans) {
    JET_CHECK(b == at, "{}: tensor data at bytes [{}, {}) {} (the tensors must tile the data buffer)", name, b, e,
              b < at ? "overlaps the previous tensor" : "leaves a gap after the previous tensor");
    at = e;
  }
  JET_CHECK(at == buf_size, "{}: the tensors cover {} bytes of a data buffer of {} (header length {} is off, or "
            "bytes trail the data)", name, at, buf_size, n);
  std::sort(f.tensors_.begin(), f.tensors_.end(),
            [](const TensorView& a, const TensorView& b) { return a.data < b.data; });
  return f;
}

const TensorView* File::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void write(const std::string& path, const std::vector<TensorView>& tensors,
           const std::map<std::string, std::string>& metadata) {
  // Larger element types first: every tensor then starts aligned to its element size.
  std::vector<const TensorView*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorView* tp : order) {
    const TensorView& t = *tp;
    JET_CHECK(!header.contains(t.name), "{}: duplicate tensor name '{}'", path, t.name);
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    JET_CHECK(numel * dtype_size(t.dtype) == t.nbytes,
              "{}: tensor '{}' has {} bytes, shape {} needs {}", path, t.name, t.nbytes,
              shape_str(t.shape), numel * dtype_size(t.dtype));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  // Pad with spaces so the data buffer starts 8-byte aligned (allowed by the format).
  h.append((8 - h.size() % 8) % 8, ' ');

  const std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  JET_CHECK(fp, "{}: cannot create ({})", tmp, std::strerror(errno));
  bool ok = true;
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t(h.size()) >> (8 * i));
  ok = ok && std::fwrite(len, 1, 8, fp) == 8;
  ok = ok && std::fwrite(h.data(), 1, h.size(), fp) == h.size();
  for (const TensorView* t : order)
    ok = ok && (t->nbytes == 0 || std::fwrite(t->data, 1, t->nbytes, fp) == t->nbytes);
  ok = ok && std::fflush(fp) == 0 && fsync(fileno(fp)) == 0;
  ok = (std::fclose(fp) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    JET_FAIL("{}: write failed ({})", path, std::strerror(err));
  }
}

}  // namespace jet::safetensors
