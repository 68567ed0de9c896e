// GGUF (v2/v3, little-endian) reader: header, metadata into JSON, tensor table, data section.
// Everything read from the file is untrusted: each count, length and offset is checked against the
// bytes that remain before it is used, so a corrupt or truncated file throws jet::Error and never
// reads out of bounds or allocates more than a small multiple of the file size.
#include "io/gguf.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "core/check.h"
#include "core/mmap.h"

namespace jet::gguf {

namespace {

struct TypeTraits {
  Type type;
  const char* name;
  int64_t block_elems, block_bytes;
  bool supported;
};

// Block sizes as in the GGUF spec (ggml's type traits).
constexpr TypeTraits kTypes[] = {
    {Type::F32, "F32", 1, 4, true},           {Type::F16, "F16", 1, 2, true},
    {Type::Q4_0, "Q4_0", 32, 18, true},       {Type::Q4_1, "Q4_1", 32, 20, true},
    {Type::Q5_0, "Q5_0", 32, 22, true},       {Type::Q5_1, "Q5_1", 32, 24, true},
    {Type::Q8_0, "Q8_0", 32, 34, true},       {Type::Q8_1, "Q8_1", 32, 40, false},
    {Type::Q2_K, "Q2_K", 256, 84, true},      {Type::Q3_K, "Q3_K", 256, 110, true},
    {Type::Q4_K, "Q4_K", 256, 144, true},     {Type::Q5_K, "Q5_K", 256, 176, true},
    {Type::Q6_K, "Q6_K", 256, 210, true},     {Type::Q8_K, "Q8_K", 256, 292, true},
    {Type::IQ2_XXS, "IQ2_XXS", 256, 66, false}, {Type::IQ2_XS, "IQ2_XS", 256, 74, false},
    {Type::IQ3_XXS, "IQ3_XXS", 256, 98, false}, {Type::IQ1_S, "IQ1_S", 256, 50, false},
    {Type::IQ4_NL, "IQ4_NL", 32, 18, false},  {Type::IQ3_S, "IQ3_S", 256, 110, false},
    {Type::IQ2_S, "IQ2_S", 256, 82, false},   {Type::IQ4_XS, "IQ4_XS", 256, 136, false},
    {Type::I8, "I8", 1, 1, false},            {Type::I16, "I16", 1, 2, false},
    {Type::I32, "I32", 1, 4, false},          {Type::I64, "I64", 1, 8, false},
    {Type::F64, "F64", 1, 8, true},           {Type::IQ1_M, "IQ1_M", 256, 56, false},
    {Type::BF16, "BF16", 1, 2, true},         {Type::TQ1_0, "TQ1_0", 256, 54, false},
    {Type::TQ2_0, "TQ2_0", 256, 66, false},   {Type::MXFP4, "MXFP4", 32, 17, false},
    {Type::NVFP4, "NVFP4", 64, 36, false},    {Type::Q1_0, "Q1_0", 128, 18, false},
};

const TypeTraits* traits(Type t) {
  for (const auto& tt : kTypes)
    if (tt.type == t) return &tt;
  return nullptr;
}

// GGUF metadata value types.
enum VType : uint32_t {
  V_U8 = 0, V_I8 = 1, V_U16 = 2, V_I16 = 3, V_U32 = 4, V_I32 = 5, V_F32 = 6, V_BOOL = 7,
  V_STRING = 8, V_ARRAY = 9, V_U64 = 10, V_I64 = 11, V_F64 = 12,
};

// The fewest bytes one value of type vt occupies (0 for an unknown type).
size_t min_value_bytes(uint32_t vt) {
  switch (vt) {
    case V_U8: case V_I8: case V_BOOL: return 1;
    case V_U16: case V_I16: return 2;
    case V_U32: case V_I32: case V_F32: return 4;
    case V_U64: case V_I64: case V_F64: return 8;
    case V_STRING: return 8;   // u64 length
    case V_ARRAY: return 12;   // u32 element type + u64 count
    default: return 0;
  }
}

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxAlignment = 1u << 30;

// Bounds-checked little-endian cursor over the file image. `what` names the part being read, for
// "truncated <what>" errors.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  const std::string& path() const { return path_; }
  std::string what = "header";

  void need(uint64_t k) const {
    if (k > left()) JET_FAIL("{}: truncated {}", path_, what);
  }
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));  // the format is little-endian, like every host we build for
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    uint64_t len = get<uint64_t>();
    need(len);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& path_;
};

nlohmann::json read_value(Reader& r, uint32_t vt, const std::string& key, int depth) {
  switch (vt) {
    case V_U8: return r.get<uint8_t>();
    case V_I8: return r.get<int8_t>();
    case V_U16: return r.get<uint16_t>();
    case V_I16: return r.get<int16_t>();
    case V_U32: return r.get<uint32_t>();
    case V_I32: return r.get<int32_t>();
    case V_U64: return r.get<uint64_t>();
    case V_I64: return r.get<int64_t>();
    case V_F32: return static_cast<double>(r.get<float>());
    case V_F64: return r.get<double>();
    case V_BOOL: {
      uint8_t b = r.get<uint8_t>();
      JET_CHECK(b <= 1, "{}: metadata key '{}' has bool value {} (expected 0 or 1)", r.path(), key, b);
      return b == 1;
    }
    case V_STRING: return r.str();
    case V_ARRAY: {
      JET_CHECK(depth < kMaxArrayDepth, "{}: metadata key '{}' nests arrays deeper than {}", r.path(),
                key, kMaxArrayDepth);
      uint32_t et = r.get<uint32_t>();
      uint64_t count = r.get<uint64_t>();
      size_t min_bytes = min_value_bytes(et);
      JET_CHECK(min_bytes > 0, "{}: metadata key '{}' is an array of unknown value type {}", r.path(),
                key, et);
      JET_CHECK(count <= r.left() / min_bytes,
                "{}: metadata key '{}' has array count {} but only {} bytes remain", r.path(), key,
                count, r.left());
      nlohmann::json a = nlohmann::json::array();
      a.get_ref<nlohmann::json::array_t&>().reserve(count);
      for (uint64_t i = 0; i < count; ++i) a.push_back(read_value(r, et, key, depth + 1));
      return a;
    }
    default: JET_FAIL("{}: metadata key '{}' has unknown value type {}", r.path(), key, vt);
  }
}

const char* json_kind(const nlohmann::json& v) {
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "float";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return v.type_name();
}

}  // namespace

const char* type_name(Type t) {
  const TypeTraits* tt = traits(t);
  return tt ? tt->name : "unknown";
}
bool type_supported(Type t) {
  const TypeTraits* tt = traits(t);
  return tt && tt->supported;
}
int64_t type_block_elems(Type t) {
  const TypeTraits* tt = traits(t);
  return tt ? tt->block_elems : 0;
}
int64_t type_block_bytes(Type t) {
  const TypeTraits* tt = traits(t);
  return tt ? tt->block_bytes : 0;
}

int64_t TensorInfo::numel() const {
  // parse() checked that the product fits; a zero dimension anywhere makes it 0 without multiplying
  // the others (whose partial product alone might not fit).
  if (std::count(shape.begin(), shape.end(), int64_t{0})) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

File File::open(const std::string& path) {
  MappedFile m = map_file(path);
  JET_CHECK(m.size > 0, "{}: not a GGUF file (empty)", path);
  File f = parse(m.data, m.size, path);
  f.mapping_ = std::move(m.mapping);
  return f;
}

File File::parse(const uint8_t* data, size_t size, const std::string& name) {
  File f;
  f.path_ = name;
  f.base_ = data;
  f.size_ = size;
  Reader r(data, size, f.path_);

  static const uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
  JET_CHECK(size > 0, "{}: not a GGUF file (empty)", name);
  if (size < 4) {
    JET_CHECK(std::memcmp(data, kMagic, size) == 0, "{}: not a GGUF file (bad magic)", name);
    JET_FAIL("{}: truncated header", name);
  }
  JET_CHECK(std::memcmp(data, kMagic, 4) == 0, "{}: not a GGUF file (bad magic)", name);
  r.get<uint32_t>();
  uint32_t version = r.get<uint32_t>();
  JET_CHECK(version != 1, "{}: GGUF v1 is not supported (only v2 and v3)", name);
  // A big-endian file has its version byte-swapped (e.g. 0x03000000).
  JET_CHECK(!(version >= 0x01000000u && (version & 0xffffu) == 0),
            "{}: big-endian GGUF files are not supported", name);
  JET_CHECK(version == 2 || version == 3, "{}: unsupported GGUF version {} (only v2 and v3)", name,
            version);
  f.version_ = version;
  uint64_t n_tensors = r.get<uint64_t>();
  uint64_t n_kv = r.get<uint64_t>();
  // A metadata pair takes at least 13 bytes (key length, value type, 1-byte value), a tensor entry
  // 24 (name length, n_dims, type, offset): reject counts the file cannot hold before allocating.
  JET_CHECK(n_kv <= r.left() / 13, "{}: metadata count {} exceeds what the file can hold", name, n_kv);
  JET_CHECK(n_tensors <= r.left() / 24, "{}: tensor count {} exceeds what the file can hold", name,
            n_tensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    r.what = fmt::format("metadata (key {} of {})", i + 1, n_kv);
    std::string key = r.str();
    r.what = fmt::format("metadata (key {} of {}, '{}')", i + 1, n_kv, key);
    uint32_t vt = r.get<uint32_t>();
    nlohmann::json v = read_value(r, vt, key, 0);
    JET_CHECK(!f.meta_.contains(key), "{}: duplicate metadata key '{}'", name, key);
    f.meta_[key] = std::move(v);
  }

  f.tensors_.reserve(n_tensors);
  std::unordered_set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    r.what = fmt::format("tensor table (tensor {} of {})", i + 1, n_tensors);
    TensorInfo t;
    t.name = r.str();
    uint32_t n_dims = r.get<uint32_t>();
    JET_CHECK(n_dims <= kMaxDims, "{}: tensor '{}' has {} dimensions (at most {})", name, t.name,
              n_dims, kMaxDims);
    uint64_t ne[kMaxDims];
    for (uint32_t d = 0; d < n_dims; ++d) ne[d] = r.get<uint64_t>();
    uint32_t type = r.get<uint32_t>();
    t.type = static_cast<Type>(type);
    t.offset = r.get<uint64_t>();

    JET_CHECK(traits(t.type), "{}: tensor '{}' has unknown type {}", name, t.name, type);
    JET_CHECK(names.insert(t.name).second, "{}: duplicate tensor name '{}'", name, t.name);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      JET_CHECK(ne[d] <= uint64_t(INT64_MAX) && !__builtin_mul_overflow(numel, ne[d], &numel) &&
                    numel <= uint64_t(INT64_MAX),
                "{}: tensor '{}' has an impossible shape (dimension {} = {})", name, t.name, d, ne[d]);
    }
    t.shape.assign(n_dims, 0);
    for (uint32_t d = 0; d < n_dims; ++d) t.shape[n_dims - 1 - d] = static_cast<int64_t>(ne[d]);
    uint64_t be = type_block_elems(t.type), bb = type_block_bytes(t.type);
    uint64_t row = n_dims ? ne[0] : 1;
    JET_CHECK(row % be == 0, "{}: tensor '{}' has rows of {} elements, not a multiple of the {} block "
              "size {}", name, t.name, row, type_name(t.type), be);
    JET_CHECK(!__builtin_mul_overflow(numel / be, bb, &t.nbytes),
              "{}: tensor '{}' has an impossible size", name, t.name);
    f.tensors_.push_back(std::move(t));
  }

  if (f.meta_.contains("general.alignment")) {
    const auto& a = f.meta_["general.alignment"];
    JET_CHECK(a.is_number_unsigned() || (a.is_number_integer() && a.get<int64_t>() > 0),
              "{}: general.alignment has type {}, expected a positive integer", name, json_kind(a));
    uint64_t al = a.get<uint64_t>();
    JET_CHECK(al > 0 && al <= kMaxAlignment && (al & (al - 1)) == 0,
              "{}: general.alignment = {} is not a power of two up to 2^30", name, al);
    f.alignment_ = al;
  }
  // pos <= size < 2^63 and alignment <= 2^30, so rounding up cannot overflow.
  f.data_offset_ = (r.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    TensorInfo& t = f.tensors_[i];
    JET_CHECK(t.offset % f.alignment_ == 0,
              "{}: tensor '{}' has offset {}, not a multiple of the alignment {}", name, t.name,
              t.offset, f.alignment_);
    uint64_t room = size >= f.data_offset_ ? size - f.data_offset_ : 0;
    JET_CHECK(t.offset <= room && t.nbytes <= room - t.offset,
              "{}: tensor '{}' data ({} bytes at data offset {}) runs past the end of the file "
              "({} bytes, data section at {})", name, t.name, t.nbytes, t.offset, size, f.data_offset_);
    t.offset += f.data_offset_;
  }
  return f;
}

const TensorInfo* File::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {
const nlohmann::json& lookup(const nlohmann::json& meta, const std::string& path,
                             const std::string& key) {
  auto it = meta.find(key);
  JET_CHECK(it != meta.end(), "{}: metadata key '{}' missing", path, key);
  return *it;
}
}  // namespace

std::string File::get_string(const std::string& key) const {
  const auto& v = lookup(meta_, path_, key);
  JET_CHECK(v.is_string(), "{}: metadata key '{}' has type {}, expected string", path_, key,
            json_kind(v));
  return v.get<std::string>();
}

int64_t File::get_int(const std::string& key) const {
  const auto& v = lookup(meta_, path_, key);
  JET_CHECK(v.is_number_integer(), "{}: metadata key '{}' has type {}, expected integer", path_, key,
            json_kind(v));
  if (v.is_number_unsigned())
    JET_CHECK(v.get<uint64_t>() <= uint64_t(INT64_MAX), "{}: metadata key '{}' = {} is out of range",
              path_, key, v.get<uint64_t>());
  return v.get<int64_t>();
}

double File::get_float(const std::string& key) const {
  const auto& v = lookup(meta_, path_, key);
  JET_CHECK(v.is_number() && !v.is_boolean(), "{}: metadata key '{}' has type {}, expected float",
            path_, key, json_kind(v));
  return v.get<double>();
}

std::vector<std::string> File::get_strings(const std::string& key) const {
  const auto& v = lookup(meta_, path_, key);
  bool ok = v.is_array();
  if (ok)
    for (const auto& e : v) ok = ok && e.is_string();
  JET_CHECK(ok, "{}: metadata key '{}' has type {}, expected array of strings", path_, key,
            json_kind(v));
  return v.get<std::vector<std::string>>();
}

void File::dequantize(const TensorInfo& t, float* out) const {
  JET_CHECK(t.offset <= size_ && t.nbytes <= size_ - t.offset,
            "{}: tensor '{}' lies outside the file", path_, t.name);
  JET_CHECK(type_supported(t.type), "{}: tensor '{}' has type {}, which jet cannot dequantise", path_,
            t.name, type_name(t.type));
  dequantize_row(t.type, data(t), out, t.numel());
}

}  // namespace jet::gguf
