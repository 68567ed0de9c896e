// PostNAS placement search: which K layers keep full attention (and which S use a sliding window),
// found by beam search over the trained supernet. Starting from the all-linear network, each round
// adds one attention layer to every placement in the beam, scores all the new placements with the
// objective on fixed held-out data, and keeps the best `beam`; full-attention layers are chosen
// first, then the sliding-window ones. The first round scores every single layer: the per-layer
// importance table (objective gain over all-linear when layer l alone is full attention).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "postnas/supernet.h"

namespace jet::postnas {

// Scores the supernet's current placement; higher is better.
struct Objective {
  std::string name;  // kl | passkey | niah | mc | a sum (kl+niah)
  std::function<double(Supernet&)> score;
};

// −KL(teacher ‖ supernet) per token on windows [N, T] (int64, CPU), `batch` rows at a time. The
// teacher's hidden states are computed once, here.
Objective kl_objective(Supernet& net, const at::Tensor& windows, int64_t batch, int64_t kl_chunk = 512);

struct PlaceOptions {
  int64_t full = 2, swa = 0;  // attention layers to place
  int64_t beam = 1;
};

struct ScoredPlacement {
  Placement placement;
  double score = 0;
};

struct PlaceResult {
  std::string objective;
  double all_linear = 0, teacher = 0;  // scores of the all-linear network and of the teacher
  std::vector<double> full_gain;       // per layer: score({l} full) − all_linear
  std::vector<double> swa_gain;        // per layer: score(best full placement + l as swa) − that placement's score (NaN: a full layer, or no swa round)
  std::vector<ScoredPlacement> top;    // the final beam, best first
  int64_t evaluations = 0;
  nlohmann::json to_json() const;
  std::string table() const;           // the importance table and the top placements, for the terminal
};

PlaceResult place_search(Supernet& net, const Objective& objective, const PlaceOptions& opts);

}  // namespace jet::postnas
