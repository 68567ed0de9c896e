// A placement: which layers of a hybrid keep (full or sliding-window) softmax attention; every other
// layer is a linear-attention block. PostNAS learns it (place.h) and the hybrid's layer_types follow.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::postnas {

struct Placement {
  std::vector<int64_t> full, swa;  // layer indices, sorted, disjoint

  // layer_types of a model of `layers` layers: "attn", "swa", or linear_type.
  std::vector<std::string> layer_types(int64_t layers, const std::string& linear_type) const;
  bool uses(int64_t layer) const;  // full or swa
  std::string str() const;         // "full [12, 20] swa [21, 22]"
  nlohmann::json to_json() const;
  // Checks indices against `layers` (and disjointness); `where` names the source in errors.
  static Placement from_json(const nlohmann::json& j, int64_t layers, const std::string& where);
  // The uniform baseline: `full` layers evenly spaced over the depth (the j-th at round((j + 1) L / (full + 1)) − 1),
  // then `swa` layers evenly spaced the same way over the layers left.
  static Placement uniform(int64_t layers, int64_t full, int64_t swa);
};

}  // namespace jet::postnas
