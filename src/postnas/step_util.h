// What the PostNAS steps share (internal to src/postnas): loading the teacher and a trained supernet,
// options common to several steps, the sub-network sampler, placements from files, writing hybrids.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tensors.h"
#include "model/checkpoint.h"
#include "postnas/distill.h"
#include "postnas/placement.h"
#include "postnas/steps.h"
#include "postnas/supernet.h"

namespace jet::data {
class TokenSet;
}

namespace jet::postnas::detail {

using nlohmann::json;

void say(const std::string& s);  // "[postnas] s" on stderr (rank 0's only)
json read_json_file(const std::string& path);

std::vector<Option> device_options();  // device, dtype, seed
std::vector<Option> train_options(int64_t steps, double lr, int64_t warmup);
std::vector<Option> concat(std::vector<std::vector<Option>> parts);
DistillOptions distill_options(const json& o, const std::string& dir, const std::string& label);
// A training step's batch: o's batch × seq_len tokens sampled from train (seed, step), with o's retrieval_mix
// share of the rows made synthetic retrieval rows (data/retrieval_mix.h; tok needed when it is > 0) and their
// answer targets. Data parallel: this rank's slice of those rows (dist.h).
std::function<Batch(int64_t)> batch_sampler(const json& o, const data::TokenSet& train, const text::Tokenizer* tok,
                                            uint64_t seed);
SupernetOptions supernet_options(const json& o);

struct Env {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};
Env env_of(const json& o);

model::Checkpoint load_teacher(const std::string& path);
std::string supernet_weights(const std::string& dir);
std::string supernet_json(const std::string& dir);
void check_supernet_dir(const std::string& dir);
// Before any loading: a checkpoint in the way of a fresh run is an error.
void check_resume(const std::string& ckpt_dir, bool resume);
// A trained supernet: the teacher with the blocks the supernet step recorded and trained.
std::unique_ptr<Supernet> load_supernet(const std::string& dir, model::Checkpoint& teacher, const Env& env);
// The sub-network of a supernet step: k_full ~ U{0..max_full} full-attention layers and k_swa ~
// U{0..max_swa} window layers, uniformly among all layers, from a generator seeded by (seed, step).
Placement sample_placement(int64_t layers, int64_t max_full, int64_t max_swa, uint64_t seed, int64_t step);
// A placement file (a place result's "best", or a placement object), or "uniform" with full/swa.
Placement placement_of(const json& o, int64_t layers);
void save_hybrid(const std::string& dir, const model::ModelConfig& config, io::TensorMap tensors,
                 std::shared_ptr<text::Tokenizer> tok, bool force);

// One candidate hybrid of select / hwsearch: the supernet of block `type` (sized by linear_config)
// distilled on placement p with o's training options, then scored: held-out KL and perplexity (select.cpp).
struct Candidate {
  int64_t params_per_layer = 0, state_bytes_per_layer = 0;
  double train_loss_last10 = 0, heldout_kl = 0, heldout_ppl = 0, tokens_per_s = 0;
  std::vector<double> losses;
  json to_json() const;
};
Candidate train_candidate(const model::Checkpoint& teacher, const std::string& type, const json& linear_config,
                          const Placement& p, const json& o, const data::TokenSet& train, const at::Tensor& windows,
                          const std::string& ckpt_dir, const std::string& label);

// Step bodies defined outside steps.cpp.
void run_select(const json& o);
void run_hwsearch(const json& o);

}  // namespace jet::postnas::detail
