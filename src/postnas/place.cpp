// Beam search over attention placements (see place.h).
#include "postnas/place.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/check.h"
#include "core/progress.h"
#include "postnas/distill.h"

namespace jet::postnas {

Objective kl_objective(Supernet& net, const at::Tensor& windows, int64_t batch, int64_t kl_chunk) {
  JET_CHECK(windows.dim() == 2 && windows.size(0) > 0, "kl objective: no held-out windows");
  std::vector<at::Tensor> ids, teacher;
  {
    c10::NoGradGuard no_grad;
    net.set_teacher();
    for (int64_t r = 0; r < windows.size(0); r += batch) {
      ids.push_back(windows.narrow(0, r, std::min(batch, windows.size(0) - r)));
      teacher.push_back(net.lm().hidden(ids.back()));
    }
  }
  return {"kl", [ids, teacher, kl_chunk](Supernet& n) {
            c10::NoGradGuard no_grad;
            double sum = 0;
            int64_t rows = 0;
            for (size_t i = 0; i < ids.size(); ++i) {
              at::Tensor h = n.lm().hidden(ids[i]);
              const int64_t N = h.size(0) * h.size(1);
              sum += N * chunked_kl(h.reshape({N, -1}), teacher[i].reshape({N, -1}), n.lm().lm_head_weight(), kl_chunk)
                             .item<double>();
              rows += N;
            }
            return -sum / rows;
          }};
}

namespace {

struct Search {
  Supernet& net;
  const Objective& obj;
  Progress& bar;
  int64_t evaluations = 0;
  double eval(const Placement& p) {
    net.set_placement(p);
    const double s = obj.score(net);
    ++evaluations;
    bar.update(1, fmt::format("{} {:.4f} | {}", obj.name, s, p.str()));
    return s;
  }
  // One round: every placement of the beam grown by one layer (full or swa), best `beam` kept.
  std::vector<ScoredPlacement> grow(const std::vector<ScoredPlacement>& beam, bool as_swa, int64_t width,
                                    std::vector<ScoredPlacement>* all = nullptr) {
    std::set<std::pair<std::vector<int64_t>, std::vector<int64_t>>> seen;
    std::vector<ScoredPlacement> out;
    for (const auto& b : beam) {
      for (int64_t l = 0; l < net.num_layers(); ++l) {
        if (b.placement.uses(l)) continue;
        Placement p = b.placement;
        auto& set = as_swa ? p.swa : p.full;
        set.push_back(l);
        std::sort(set.begin(), set.end());
        if (!seen.insert({p.full, p.swa}).second) continue;
        out.push_back({p, eval(p)});
      }
    }
    if (all) *all = out;
    std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.score > b.score; });
    if (static_cast<int64_t>(out.size()) > width) out.resize(width);
    return out;
  }
};

// Evaluations of a search: the all-linear network, the teacher, and the rounds.
int64_t planned_evaluations(int64_t L, const PlaceOptions& o) {
  int64_t n = 2, used = 0;
  for (int64_t r = 0; r < o.full + o.swa; ++r, ++used) n += (r == 0 ? 1 : o.beam) * (L - used);
  return n;
}

}  // namespace

PlaceResult place_search(Supernet& net, const Objective& objective, const PlaceOptions& opts) {
  const int64_t L = net.num_layers();
  JET_CHECK(opts.full >= 0 && opts.swa >= 0 && opts.full + opts.swa >= 1 && opts.full + opts.swa <= L,
            "place: {} full + {} swa attention layers do not fit {} layers (at least one needed)", opts.full, opts.swa,
            L);
  JET_CHECK(opts.beam >= 1, "place: the beam width must be at least 1");
  Progress bar("place/" + objective.name, planned_evaluations(L, opts), "eval");
  Search s{net, objective, bar};
  PlaceResult r;
  r.objective = objective.name;
  r.all_linear = s.eval(Placement{});
  net.set_teacher();
  r.teacher = objective.score(net);
  ++s.evaluations;
  bar.update(1, fmt::format("teacher {:.4f}", r.teacher));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.full_gain.assign(L, nan);
  r.swa_gain.assign(L, nan);
  std::vector<ScoredPlacement> beam = {{Placement{}, r.all_linear}}, round;
  for (int64_t k = 0; k < opts.full; ++k) {
    beam = s.grow(beam, false, opts.beam, k == 0 ? &round : nullptr);
    if (k == 0)
      for (const auto& c : round) r.full_gain[c.placement.full[0]] = c.score - r.all_linear;
  }
  for (int64_t k = 0; k < opts.swa; ++k) {
    const ScoredPlacement best = beam.front();
    beam = s.grow(beam, true, opts.beam, k == 0 ? &round : nullptr);
    if (k == 0)
      for (const auto& c : round)
        if (c.placement.full == best.placement.full)
          for (int64_t l : c.placement.swa) r.swa_gain[l] = c.score - best.score;
  }
  bar.finish();
  r.top = beam;
  r.evaluations = s.evaluations;
  return r;
}

nlohmann::json PlaceResult::to_json() const {
  auto nums = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x));
    return a;
  };
  nlohmann::json top_j = nlohmann::json::array();
  for (const auto& t : top) top_j.push_back({{"placement", t.placement.to_json()}, {"score", t.score}});
  return {{"objective", objective}, {"all_linear", all_linear}, {"teacher", teacher},
          {"full_gain", nums(full_gain)}, {"swa_gain", nums(swa_gain)}, {"top", top_j},
          {"best", top.empty() ? nlohmann::json(nullptr) : top.front().placement.to_json()},
          {"evaluations", evaluations}};
}

std::string PlaceResult::table() const {
  std::string s = fmt::format("objective {} (higher is better): all-linear {:.4f}, teacher {:.4f}\n", objective,
                              all_linear, teacher);
  s += "layer  full-attn gain  swa gain  \n";
  double hi = 0;
  for (double g : full_gain)
    if (!std::isnan(g)) hi = std::max(hi, std::abs(g));
  for (size_t l = 0; l < full_gain.size(); ++l) {
    const int bars = hi > 0 && !std::isnan(full_gain[l]) ? static_cast<int>(std::lround(20 * std::max(0.0, full_gain[l]) / hi)) : 0;
    s += fmt::format("{:>5}  {:>14}  {:>8}  {}\n", l, std::isnan(full_gain[l]) ? "-" : fmt::format("{:+.4f}", full_gain[l]),
                     std::isnan(swa_gain[l]) ? "-" : fmt::format("{:+.4f}", swa_gain[l]), std::string(bars, '#'));
  }
  for (size_t i = 0; i < top.size(); ++i)
    s += fmt::format("top {}: {}  score {:.4f}\n", i + 1, top[i].placement.str(), top[i].score);
  return s;
}

}  // namespace jet::postnas
