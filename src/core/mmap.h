// Read-only memory map of a whole regular file (model files are mapped, never read into memory).
// Pure C++ (no ATen) so the fuzzed parsers can use it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace jet {

struct MappedFile {
  std::shared_ptr<void> mapping;  // unmaps when the last owner goes; null for an empty file
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// Throws "<path>: cannot open (...)", "<path>: not a regular file", "<path>: cannot map (...)".
// An empty file maps to {null, null, 0}: the caller's parser reports it in its own words.
MappedFile map_file(const std::string& path);

}  // namespace jet
