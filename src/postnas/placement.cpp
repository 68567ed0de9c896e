// Placement: layer sets, their layer_types and JSON form.
#include "postnas/placement.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/ranges.h>

#include "core/check.h"

namespace jet::postnas {

std::vector<std::string> Placement::layer_types(int64_t layers, const std::string& linear_type) const {
  std::vector<std::string> t(layers, linear_type);
  for (int64_t l : full) t.at(l) = "attn";
  for (int64_t l : swa) t.at(l) = "swa";
  return t;
}

bool Placement::uses(int64_t layer) const {
  return std::count(full.begin(), full.end(), layer) + std::count(swa.begin(), swa.end(), layer) > 0;
}

std::string Placement::str() const {
  return fmt::format("full [{}] swa [{}]", fmt::join(full, ", "), fmt::join(swa, ", "));
}

nlohmann::json Placement::to_json() const { return {{"full", full}, {"swa", swa}}; }

Placement Placement::from_json(const nlohmann::json& j, int64_t layers, const std::string& where) {
  JET_CHECK(j.is_object(), "{}: a placement must be an object {{\"full\": [...], \"swa\": [...]}}", where);
  Placement p;
  std::set<int64_t> seen;
  for (auto [key, out] : {std::pair<const char*, std::vector<int64_t>*>{"full", &p.full}, {"swa", &p.swa}}) {
    if (!j.contains(key)) continue;
    JET_CHECK(j[key].is_array(), "{}: placement '{}' must be a list of layer indices", where, key);
    for (const auto& v : j[key]) {
      JET_CHECK(v.is_number_integer(), "{}: placement '{}' entries must be integers", where, key);
      const int64_t l = v.get<int64_t>();
      JET_CHECK(l >= 0 && l < layers, "{}: layer {} outside [0, {})", where, l, layers);
      JET_CHECK(seen.insert(l).second, "{}: layer {} appears twice", where, l);
      out->push_back(l);
    }
    std::sort(out->begin(), out->end());
  }
  return p;
}

namespace {
// `n` of `from` spread evenly: the j-th at index round((j + 1) |from| / (n + 1)) − 1.
std::vector<int64_t> spread(const std::vector<int64_t>& from, int64_t n) {
  std::vector<int64_t> out;
  const double m = static_cast<double>(from.size());
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = std::clamp<int64_t>(std::lround((j + 1) * m / (n + 1)) - 1, 0, from.size() - 1);
    out.push_back(from[i]);
  }
  return out;
}
}  // namespace

Placement Placement::uniform(int64_t layers, int64_t full, int64_t swa) {
  JET_CHECK(full >= 0 && swa >= 0 && full + swa <= layers, "uniform placement: {} full + {} swa layers of {}",
            full, swa, layers);
  std::vector<int64_t> all(layers);
  for (int64_t i = 0; i < layers; ++i) all[i] = i;
  Placement p;
  p.full = spread(all, full);
  std::vector<int64_t> rest;
  for (int64_t l : all)
    if (!std::count(p.full.begin(), p.full.end(), l)) rest.push_back(l);
  p.swa = spread(rest, swa);
  return p;
}

}  // namespace jet::postnas
