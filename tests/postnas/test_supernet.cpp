// PostNAS core on a tiny random teacher: the supernet's paths (teacher == the plain model, a placement
// == the exported hybrid), chunked KL and its gradient vs autograd, distillation lowers the loss and
// resumes bit-exactly, the beam search returns a valid placement and importance table.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "core/check.h"
#include "core/fs.h"
#include "../model/tiny_model.h"
#include "../ops/test_util.h"
#include "postnas/distill.h"
#include "postnas/optim.h"
#include "postnas/place.h"
#include "postnas/supernet.h"

namespace {

using jet::postnas::Placement;
using jet::postnas::Supernet;
using jet::postnas::SupernetOptions;

jet::model::ModelConfig teacher_config() {
  auto j = jet::test::tiny_config_json();
  j["num_hidden_layers"] = 5;
  return jet::model::ModelConfig::from_json(j, "tiny");
}

std::unique_ptr<Supernet> make_supernet(const std::string& type = "jet", uint64_t seed = 3) {
  const auto c = teacher_config();
  SupernetOptions o;
  o.linear_type = type;
  o.swa_window = 4;
  o.seed = seed;
  return std::make_unique<Supernet>(c, jet::test::random_weights(c, 7), o, at::kFloat, at::kCPU);
}

at::Tensor ids_of(int64_t B, int64_t T, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, 97, {B, T}, gen, at::kLong);
}

std::string temp_dir(const std::string& tag) {
  const std::string d = "/tmp/jet_test_postnas_" + tag + "_" + std::to_string(getpid());
  jet::remove_tree(d);
  return d;
}

TEST(Supernet, TeacherPathIsTheTeacherAndPlacementsAreTheHybrid) {
  auto net = make_supernet();
  const auto c = teacher_config();
  jet::model::CausalLM plain(c);
  plain.load_weights(jet::test::random_weights(c, 7), at::kFloat, at::kCPU, "tiny");
  c10::NoGradGuard no_grad;
  const at::Tensor ids = ids_of(2, 19, 1);
  net->set_teacher();
  EXPECT_EQ((net->lm().forward(ids) - plain.forward(ids)).abs().max().item<float>(), 0.0f);

  Placement p;
  p.full = {1};
  p.swa = {3};
  net->set_placement(p);
  const at::Tensor hybrid_logits = net->lm().forward(ids);
  EXPECT_GT((hybrid_logits - plain.forward(ids)).abs().max().item<float>(), 1e-3);
  const auto hc = net->hybrid_config(p);
  EXPECT_EQ(hc.layer_types, (std::vector<std::string>{"jet", "attn", "jet", "swa", "jet"}));
  jet::model::CausalLM hybrid(hc);
  hybrid.load_weights(net->hybrid_weights(p), at::kFloat, at::kCPU, "hybrid");  // every weight, no extra
  EXPECT_EQ((hybrid.forward(ids) - hybrid_logits).abs().max().item<float>(), 0.0f);
  // The hybrid config round-trips through config.json.
  const auto again = jet::model::ModelConfig::from_json(hc.to_json(), "again");
  EXPECT_EQ(again.layer_types, hc.layer_types);
  EXPECT_EQ(again.swa->window_size, 4);
}

TEST(Supernet, LinearBlocksStartFromTheTeachersProjections) {
  auto net = make_supernet();
  const auto w = jet::test::random_weights(teacher_config(), 7);
  const auto lw = net->linear_weights();
  EXPECT_TRUE(at::equal(lw.at("model.layers.2.linear_attn.q_proj.weight"), w.at("model.layers.2.self_attn.q_proj.weight")));
  // GQA: 2 KV heads of 8 repeated for 4 query heads.
  const at::Tensor k = lw.at("model.layers.2.linear_attn.k_proj.weight");
  const at::Tensor tk = w.at("model.layers.2.self_attn.k_proj.weight");
  EXPECT_TRUE(at::equal(k.narrow(0, 8, 8), tk.narrow(0, 0, 8)));
  EXPECT_TRUE(at::equal(k.narrow(0, 16, 8), tk.narrow(0, 8, 8)));
  for (const auto& p : net->linear_params()) EXPECT_TRUE(p.slot->requires_grad()) << p.name;
  for (const auto& p : net->lm().params()) EXPECT_FALSE(p.slot->requires_grad()) << p.name;
}

TEST(Distill, ChunkedKlAndGradientMatchAutograd) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor hs = at::randn({13, 6}, gen, at::kDouble), ht = at::randn({13, 6}, gen, at::kDouble);
  const at::Tensor W = at::randn({11, 6}, gen, at::kDouble);
  at::Tensor grad;
  const double kl = jet::postnas::chunked_kl(hs, ht, W, 4, &grad, 1.5).item<double>();
  at::Tensor x = hs.clone().set_requires_grad(true);
  at::Tensor ls = at::log_softmax(at::matmul(x, W.t()) / 1.5, -1), lt = at::log_softmax(at::matmul(ht, W.t()) / 1.5, -1);
  at::Tensor ref = (lt.exp() * (lt - ls)).sum() / 13;
  ref.backward();
  EXPECT_NEAR(kl, ref.item<double>(), 1e-6 * std::abs(ref.item<double>()));
  EXPECT_LT((grad - x.grad()).abs().max().item<double>(), 1e-6);
  EXPECT_GT(kl, 0);
}

// distill_loss_backward (chunked KL with a hand-made gradient + hidden_mse · layer_mse + answer_ce · answer_ce_loss
// through autograd) against the same loss written plainly in float64 (full logits, relative MSE per layer,
// cross-entropy at the answer positions) and differentiated by autograd.
TEST(Distill, LossWithHiddenStatesAndAnswersMatchesAutograd) {
  auto net = make_supernet("jet", 4);
  const at::Tensor ids = ids_of(2, 13, 9);
  // Answer targets at three positions of row 0 and one of row 1 (odd places; the ids there are arbitrary tokens).
  at::Tensor answers = at::full({2, 13}, -1, at::kLong);
  for (const auto& [r, t] : std::vector<std::pair<int, int>>{{0, 4}, {0, 5}, {0, 11}, {1, 7}}) answers[r][t] = ids[r][t + 1];
  at::Tensor h_t;
  std::vector<at::Tensor> layers_t;
  {
    c10::NoGradGuard no_grad;
    net->set_teacher();
    h_t = net->lm().hidden(ids, 0, nullptr, &layers_t);
  }
  ASSERT_EQ(layers_t.size(), 5u);
  Placement p;
  p.full = {1};
  p.swa = {3};
  net->set_placement(p);
  auto grads = [&]() {
    std::vector<at::Tensor> g;
    for (const auto& q : net->linear_params()) {
      g.push_back(q.slot->grad().defined() ? q.slot->grad().to(at::kDouble) : at::zeros_like(*q.slot, at::kDouble));
      if (q.slot->grad().defined()) q.slot->mutable_grad().zero_();
    }
    return g;
  };
  const at::Tensor flat_answers = answers.reshape({-1});
  const at::Tensor at_pos = (flat_answers >= 0).nonzero().squeeze(1);
  for (const auto& [w, a] : std::vector<std::pair<double, double>>{{0.0, 0.0}, {0.7, 0.0}, {0.0, 0.9}, {0.7, 0.9}}) {
    jet::postnas::DistillOptions o;
    o.kl_chunk = 5;
    o.hidden_mse = w;
    o.answer_ce = a;
    grads();
    const double loss = jet::postnas::distill_loss_backward(net->lm(), ids, answers, h_t, layers_t, o).item<double>();
    const auto g1 = grads();
    std::vector<at::Tensor> layers_s;
    const at::Tensor h_s = net->lm().hidden(ids, 0, nullptr, &layers_s).to(at::kDouble);
    const at::Tensor W = net->lm().lm_head_weight().to(at::kDouble);
    const at::Tensor ls = at::log_softmax(at::matmul(h_s, W.t()), -1);
    const at::Tensor lt = at::log_softmax(at::matmul(h_t.to(at::kDouble), W.t()), -1);
    at::Tensor ref = (lt.exp() * (lt - ls)).sum() / 26;
    at::Tensor mse = at::zeros({}, at::kDouble);
    for (size_t l = 0; l < 5; ++l) {
      const at::Tensor s64 = layers_s[l].to(at::kDouble), t64 = layers_t[l].to(at::kDouble);
      mse = mse + (s64 - t64).square().sum() / t64.square().sum();
    }
    const at::Tensor ce =
        -ls.reshape({26, -1}).index_select(0, at_pos).gather(1, flat_answers.index_select(0, at_pos).unsqueeze(1)).mean();
    ref = ref + w * mse / 5 + a * ce;
    ref.backward();
    const auto g2 = grads();
    EXPECT_NEAR(loss, ref.item<double>(), 1e-5 * std::abs(ref.item<double>())) << "hidden_mse " << w << " answer_ce " << a;
    double err = 0, scale = 0;
    for (size_t i = 0; i < g1.size(); ++i) {
      err = std::max(err, (g1[i] - g2[i]).abs().max().item<double>());
      scale = std::max(scale, g2[i].abs().max().item<double>());
    }
    EXPECT_GT(scale, 0);
    EXPECT_LT(err, 1e-4 * scale) << "hidden_mse " << w << " answer_ce " << a;
  }
  // The answer term moves the loss; without answers it is absent; mismatched shapes are an error.
  const at::Tensor h_s = net->lm().hidden(ids, 0, nullptr, nullptr);
  EXPECT_GT(jet::postnas::answer_ce_loss(h_s, answers, net->lm().lm_head_weight()).item<double>(), 0);
  EXPECT_FALSE(jet::postnas::answer_ce_loss(h_s, at::full({2, 13}, -1, at::kLong), net->lm().lm_head_weight()).defined());
  EXPECT_THROW(jet::postnas::answer_ce_loss(h_s, answers.narrow(1, 0, 12), net->lm().lm_head_weight()), jet::Error);
  EXPECT_THROW(jet::postnas::layer_mse({h_t}, layers_t), jet::Error);
}

// The supernet's distillation on fixed random data: sampled sub-networks, teacher = all attention.
jet::postnas::DistillResult train(Supernet& net, const std::string& dir, int64_t steps, int64_t stop_after,
                                  bool resume, bool reference = false, int64_t micro_batch = 0,
                                  double answer_ce = 0) {
  jet::postnas::DistillOptions o;
  o.answer_ce = answer_ce;
  o.reference_kl = o.reference_adam = reference;
  o.micro_batch = micro_batch;
  o.log_every = 5;
  o.steps = steps;
  o.adam.lr = 1e-2;
  o.adam.warmup = 2;
  o.adam.total = steps;
  o.checkpoint_every = 3;
  o.kl_chunk = 16;
  o.dir = dir;
  o.resume = resume;
  o.stop_after = stop_after;
  o.fingerprint = {{"steps", steps}};
  jet::postnas::DistillHooks h;
  h.batch = [](int64_t step) {
    jet::postnas::Batch b{ids_of(2, 24, 100 + step % 4), at::full({2, 24}, -1, at::kLong)};
    for (int64_t r = 0; r < 2; ++r) b.answers[r][20 - r] = b.ids[r][21 - r];  // one answer token a row
    return b;
  };
  h.teacher_hidden = [&net](const at::Tensor& ids, std::vector<at::Tensor>* layers) {
    net.set_teacher();
    return net.lm().hidden(ids, 0, nullptr, layers);
  };
  h.prepare = [&net](int64_t step) {
    Placement p;
    if (step % 2) p.full = {step % 4 == 1 ? 1 : 3};  // period 4, like the batches
    net.set_placement(p);
  };
  return jet::postnas::distill(net.lm(), net.linear_params(), o, h);
}

// Records what a layer's mixer is given (the wrapped SuperMixer does the work).
class Recorder : public jet::model::Mixer {
 public:
  void set_inner(std::unique_ptr<jet::model::Mixer> inner) { inner_ = std::move(inner); }
  jet::postnas::SuperMixer& inner() { return static_cast<jet::postnas::SuperMixer&>(*inner_); }
  at::Tensor x;
  jet::model::ForwardContext ctx;
  at::Tensor forward(const at::Tensor& in, const jet::model::ForwardContext& c, jet::model::MixerState* st) override {
    x = in.detach();
    ctx = c;
    return inner_->forward(in, c, st);
  }
  std::unique_ptr<jet::model::MixerState> new_state(int64_t b, int64_t n, const at::TensorOptions& o) const override {
    return inner_->new_state(b, n, o);
  }
  at::Tensor forward_rows(const at::Tensor& in, const jet::model::ForwardContext& c, jet::model::MixerState& st,
                          int64_t row) override {
    return inner_->forward_rows(in, c, st, row);
  }
  at::Tensor decode_rows(const at::Tensor& in, const jet::model::ForwardContext& c, jet::model::MixerState& st) override {
    return inner_->decode_rows(in, c, st);
  }
  int64_t cache_bytes_per_token(int64_t e) const override { return inner_->cache_bytes_per_token(e); }

 private:
  std::unique_ptr<jet::model::Mixer> inner_;
};

// Attention transfer: each layer's loss is the relative distance between its linear block and its attention on
// the teacher's inputs (checked per layer against both paths run on the recorded input), the forward's output
// stays the teacher's, gradients reach only the linear blocks, and training on it lowers it.
TEST(Supernet, AttentionTransferMatchesLayerByLayerAndLearns) {
  auto net = make_supernet();
  const at::Tensor ids = ids_of(2, 21, 5);
  at::Tensor teacher_h;
  {
    c10::NoGradGuard g;
    net->set_teacher();
    teacher_h = net->lm().hidden(ids);
  }
  const int64_t L = net->num_layers();
  std::vector<Recorder*> rec;
  for (int64_t l = 0; l < L; ++l) {
    auto r = std::make_unique<Recorder>();
    Recorder* raw = r.get();
    raw->set_inner(net->lm().replace_mixer(l, std::move(r)));  // the SuperMixer, now inside the recorder
    rec.push_back(raw);
  }
  net->set_transfer(true);
  const at::Tensor h = net->lm().hidden(ids);
  EXPECT_EQ((h - teacher_h).abs().max().item<float>(), 0.0f);  // teacher-forced all the way
  const double loss = net->transfer_loss().item<double>();
  double want = 0;
  {
    c10::NoGradGuard g;
    for (int64_t l = 0; l < L; ++l) {
      auto& m = rec[l]->inner();
      m.transfer = false;
      m.path = jet::postnas::Path::full;
      const at::Tensor a = m.forward(rec[l]->x, rec[l]->ctx, nullptr).to(at::kDouble);
      m.path = jet::postnas::Path::linear;
      const at::Tensor s = m.forward(rec[l]->x, rec[l]->ctx, nullptr).to(at::kDouble);
      want += (s - a).square().sum().item<double>() / a.square().sum().item<double>() / double(L);
    }
  }
  EXPECT_GT(want, 1e-3);
  EXPECT_NEAR(loss, want, 1e-4 * want);
  // Training on a fixed batch (whole and in micro-batches): the loss falls; the teacher's weights get no gradient.
  jet::postnas::AdamWOptions ao;
  ao.lr = 1e-2;
  ao.total = 30;
  jet::postnas::AdamW adam(net->linear_params(), ao);
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    const double l = jet::postnas::transfer_step(*net, ids, step % 2 ? 1 : 0).item<double>();
    for (const auto& p : net->lm().params()) EXPECT_FALSE(p.slot->grad().defined()) << p.name;
    adam.step(step);
    if (step == 0) first = l;
    last = l;
  }
  EXPECT_LT(last, 0.5 * first);
  EXPECT_THROW(net->transfer_loss(), jet::Error);  // transfer_step leaves transfer mode
}

TEST(Distill, LossFallsAndResumeIsBitExact) {
  const std::string d1 = temp_dir("a"), d2 = temp_dir("b");
  auto net = make_supernet();
  const auto full = train(*net, d1, 24, -1, false);
  ASSERT_EQ(full.losses.size(), 24u);
  EXPECT_TRUE(full.finished);
  // Steps 0..3 and 20..23 see the same 4 batches and sub-networks: the loss on them must have fallen clearly.
  double first = 0, last = 0;
  for (int i = 0; i < 4; ++i) first += full.losses[i], last += full.losses[20 + i];
  EXPECT_LT(last, 0.8 * first) << "first 4 steps " << first / 4 << ", last 4 " << last / 4;

  auto net2 = make_supernet();
  const auto part = train(*net2, d2, 24, 11, false);  // "killed" after step 11 (checkpoints at 3, 6, 9, 11)
  EXPECT_FALSE(part.finished);
  EXPECT_THROW(train(*net2, d2, 24, -1, false), jet::Error);  // a checkpoint is there: --resume needed
  // A checkpoint write cut by a kill leaves its temp file; the resumed run removes it.
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  const std::string stale = fmt::format("{}/checkpoint-12.safetensors.tmp.{}", d2, gone);
  std::ofstream(stale) << "half a checkpoint";
  // A kill between a checkpoint's two writes (its tensors, then checkpoint.json) leaves a whole state file that
  // checkpoint.json does not name (13: no checkpoint of the resumed run has that step); the next checkpoint removes it.
  const std::string orphan = d2 + "/checkpoint-13.safetensors";
  std::ofstream(orphan) << "an unreferenced state file";
  auto net3 = make_supernet();  // a fresh process: only the checkpoint carries over
  const auto rest = train(*net3, d2, 24, -1, true);
  EXPECT_FALSE(jet::path_exists(stale));
  EXPECT_FALSE(jet::path_exists(orphan));
  int state_files = 0;
  for (const auto& f : jet::list_files(d2)) state_files += f.rfind("checkpoint-", 0) == 0;
  EXPECT_EQ(state_files, 1);
  ASSERT_EQ(rest.losses.size(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(rest.losses[i], full.losses[i]) << "step " << i;
  const auto w1 = net->linear_weights(), w3 = net3->linear_weights();
  for (const auto& [name, t] : w1) EXPECT_TRUE(at::equal(t, w3.at(name))) << name;
  jet::remove_tree(d1);
  jet::remove_tree(d2);
}

// The fast path (fused multi-tensor AdamW with the clip as its gradient scale, losses read back every few
// steps) against the old one (per-tensor AdamW, a host sync per step) over 200 steps. The two AdamW forms round
// differently, and Adam turns rounding-sized gradients into lr-sized steps, so the trajectories part after a
// few dozen steps at this learning rate (measured: 1e-6 relative at step 10, 1e-3 at step 20). Stated tolerance:
// the first 10 steps equal to 1e-5, then every 20-step mean of the loss within 10% (measured ≤ 7%).
TEST(Distill, FastPathFollowsTheReferenceLossCurve) {
  jet::test::SingleThread one;
  const std::string d1 = temp_dir("fast"), d2 = temp_dir("ref");
  auto a = make_supernet(), b = make_supernet();
  const auto fast = train(*a, d1, 200, -1, false, false);
  const auto ref = train(*b, d2, 200, -1, false, true);
  ASSERT_EQ(fast.losses.size(), 200u);
  ASSERT_EQ(ref.losses.size(), 200u);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(fast.losses[i], ref.losses[i], 1e-5 * ref.losses[i]) << "step " << i;
  for (int w = 0; w < 200; w += 20) {
    double f = 0, r = 0;
    for (int i = w; i < w + 20; ++i) f += fast.losses[i], r += ref.losses[i];
    EXPECT_NEAR(f, r, 0.1 * r) << "steps " << w << ".." << w + 19;
  }
  EXPECT_LT(fast.losses.back(), 0.2 * fast.losses.front());
  jet::remove_tree(d1);
  jet::remove_tree(d2);
}

// Gradient accumulation: two micro-batches of one sequence give the step of the whole batch.
TEST(Distill, MicroBatchesAccumulateToTheWholeBatch) {
  jet::test::SingleThread one;
  const std::string d1 = temp_dir("mb1"), d2 = temp_dir("mb2");
  auto a = make_supernet(), b = make_supernet();
  const auto whole = train(*a, d1, 8, -1, false);
  const auto micro = train(*b, d2, 8, -1, false, false, 1);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(micro.losses[i], whole.losses[i], 1e-5 * whole.losses[i]) << "step " << i;
  const auto w1 = a->linear_weights(), w2 = b->linear_weights();
  for (const auto& [name, t] : w1) EXPECT_LT((t - w2.at(name)).abs().max().item<double>(), 1e-4) << name;
  EXPECT_THROW(train(*b, temp_dir("mb3"), 2, -1, false, false, 3), jet::Error);  // 3 does not divide 2
  // With the answers' cross-entropy: each micro-batch (a row) holds its own answer.
  const std::string d3 = temp_dir("mb4"), d4 = temp_dir("mb5");
  auto c = make_supernet(), e = make_supernet();
  const auto whole_ce = train(*c, d3, 4, -1, false, false, 0, 0.5);
  const auto micro_ce = train(*e, d4, 4, -1, false, false, 1, 0.5);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(micro_ce.losses[i], whole_ce.losses[i], 1e-5 * whole_ce.losses[i]) << "step " << i;
    EXPECT_GT(whole_ce.losses[i], whole.losses[i] + 0.1) << "step " << i;  // the answer term is in the loss
  }
  for (const std::string& d : {d1, d2, d3, d4}) jet::remove_tree(d);
}

// The fused AdamW step against the per-tensor loop on random gradients, with clipping active and weight decay
// on matrices only, over a few steps (moments carried).
TEST(AdamW, FusedStepMatchesTheReferenceLoop) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  std::vector<at::Tensor> wa = {at::randn({5, 7}, gen), at::randn({9}, gen), at::randn({3, 4}, gen)};
  std::vector<at::Tensor> wb;
  for (auto& w : wa) wb.push_back(w.clone());
  jet::model::ParamList pa, pb;
  for (size_t i = 0; i < wa.size(); ++i) {
    wa[i].set_requires_grad(true), wb[i].set_requires_grad(true);
    pa.push_back({"w" + std::to_string(i), wa[i].sizes().vec(), &wa[i]});
    pb.push_back({"w" + std::to_string(i), wb[i].sizes().vec(), &wb[i]});
  }
  jet::postnas::AdamWOptions o;
  o.lr = 3e-2, o.weight_decay = 0.1, o.grad_clip = 2.0, o.warmup = 2, o.total = 6;
  jet::postnas::AdamWOptions r = o;
  r.fused = false;
  jet::postnas::AdamW fa(pa, o), fb(pb, r);
  for (int step = 0; step < 6; ++step) {
    for (size_t i = 0; i < wa.size(); ++i) {
      const at::Tensor g = at::randn(wa[i].sizes(), gen) * (step % 2 ? 3.0 : 0.1);  // clipped on odd steps
      wa[i].mutable_grad() = g.clone();
      wb[i].mutable_grad() = g.clone();
    }
    const double na = fa.step(step).item<double>(), nb = fb.step(step).item<double>();
    EXPECT_NEAR(na, nb, 1e-6 * nb);
    for (size_t i = 0; i < wa.size(); ++i) {
      EXPECT_LT((wa[i] - wb[i]).abs().max().item<double>(), 1e-6) << "step " << step << " tensor " << i;
      EXPECT_FALSE(wa[i].grad().defined());
    }
  }
  const auto sa = fa.state(), sb = fb.state();
  for (const auto& [name, t] : sa) EXPECT_LT((t - sb.at(name)).abs().max().item<double>(), 1e-6) << name;
}

TEST(Place, BeamSearchReturnsAValidPlacementAndImportance) {
  auto net = make_supernet();
  const at::Tensor windows = ids_of(3, 16, 9);
  auto obj = jet::postnas::kl_objective(*net, windows, 2, 32);
  jet::postnas::PlaceOptions o;
  o.full = 2;
  o.swa = 1;
  o.beam = 2;
  const auto r = jet::postnas::place_search(*net, obj, o);
  ASSERT_EQ(r.top.size(), 2u);
  const Placement& best = r.top[0].placement;
  EXPECT_EQ(best.full.size(), 2u);
  EXPECT_EQ(best.swa.size(), 1u);
  for (int64_t l : best.full) EXPECT_FALSE(std::count(best.swa.begin(), best.swa.end(), l));
  EXPECT_GE(r.top[0].score, r.top[1].score);
  EXPECT_NEAR(r.teacher, 0.0, 1e-6);  // −KL of the teacher against itself
  EXPECT_LT(r.all_linear, r.teacher);
  // The best placement's score is reproducible and at least each single layer's.
  net->set_placement(best);
  EXPECT_NEAR(obj.score(*net), r.top[0].score, 1e-9);
  for (double g : r.full_gain) ASSERT_FALSE(std::isnan(g));
  // 2 (all-linear, teacher) + 5 singles + the beam's 2 × 4 pairs less the one both grow into + 2 × 3 swa.
  EXPECT_EQ(r.evaluations, 2 + 5 + 2 * 4 - 1 + 2 * 3);
  EXPECT_NE(r.table().find("full-attn gain"), std::string::npos);
}

TEST(Placement, UniformAndJson) {
  const auto u = Placement::uniform(30, 2, 2);
  EXPECT_EQ(u.full, (std::vector<int64_t>{9, 19}));
  EXPECT_EQ(u.swa.size(), 2u);
  const auto back = Placement::from_json(u.to_json(), 30, "test");
  EXPECT_EQ(back.full, u.full);
  EXPECT_EQ(back.swa, u.swa);
  EXPECT_THROW(Placement::from_json({{"full", {3, 3}}}, 30, "t"), jet::Error);
  EXPECT_THROW(Placement::from_json({{"full", {30}}}, 30, "t"), jet::Error);
}

}  // namespace
