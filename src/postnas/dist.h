// Data parallel distillation on LibTorch's c10d (docs/POSTNAS.md, "Data parallel"): N processes (ranks), each
// with the whole student on its own device, each taking its slice of every step's global batch; the gradients are
// averaged over the ranks before the optimizer, so N ranks at batch B reproduce one process at batch B.
//   World     a process's place in the job, from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
//             MASTER_ADDR, MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE)
//   launch    `--nproc N`: N copies of this process's command line with that environment; hosts the TCPStore,
//             watches the ranks and stops them all when one fails
//   Group     the c10d process group of the world: TCPStore rendezvous, ProcessGroupGloo on the CPU,
//             ProcessGroupNCCL on CUDA (JET_CUDA builds); its collectives fail as one error line
//   GradSync  gradients averaged in buckets, each bucket's allreduce started from the parameters'
//             post-accumulate-grad hooks while the backward goes on
// One process (no WORLD_SIZE, or 1) makes no Group: every caller's single-process path is unchanged.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/params.h"

namespace jet::postnas::dist {

struct World {
  int rank = 0, size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  bool agent_store = false;  // the launcher hosts the TCPStore (else rank 0 does)
};

// The world of this process from its environment: size 1 without WORLD_SIZE. A malformed or inconsistent
// variable is one error line naming it.
World world_from_env();

// Runs `nproc` ranks of this process's own command line (/proc/self/exe, /proc/self/cmdline) with torchrun's
// environment, on MASTER_ADDR:MASTER_PORT when set, else 127.0.0.1 and a free port; the store is hosted here.
// Returns when every rank has exited 0. When one fails (non-zero exit or a signal), the others are stopped
// (SIGTERM, SIGKILL after a grace) and it throws one line naming the rank; a rank whose launcher dies gets SIGKILL.
void launch(int nproc, std::chrono::seconds timeout);

// One error line when this build or machine cannot run `ranks` ranks on device (no Gloo / NCCL in the build, fewer
// GPUs than ranks on one host); the launcher asks before it starts any.
void check_backend(at::Device device, int ranks);

class Group {
 public:
  // Joins the world (rendezvous waits up to `timeout` for every rank; the collectives time out after it too).
  // device: cpu → Gloo (a build without the gloo headers says so); cuda → NCCL on cuda:LOCAL_RANK, which
  // becomes the current device. The group becomes current() until destroyed; one at a time.
  Group(const World& world, at::Device device, std::chrono::milliseconds timeout);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return world_.rank; }
  int size() const { return world_.size; }
  bool leader() const { return world_.rank == 0; }
  at::Device device() const { return device_; }

  // Starts the in-place sum of t (on device()) over the ranks; wait_all() waits for every op started.
  // Thread-safe (the gradient hooks start them from the autograd threads). Every rank must start the same
  // ops in the same order.
  void allreduce_sum_async(const at::Tensor& t);
  void wait_all();
  // Blocking: the sum over the ranks of t (any device; returned on t's device).
  at::Tensor allreduce_sum(const at::Tensor& t);
  // Blocking: rank 0's t (any device), copied into t on every rank.
  void broadcast(at::Tensor& t);

 private:
  struct Impl;
  [[noreturn]] void fail(const std::exception& e) const;
  World world_;
  at::Device device_;
  std::unique_ptr<Impl> impl_;
};

// The group of this process, nullptr when it runs alone.
Group* current();
inline int rank() { return current() ? current()->rank() : 0; }
inline int size() { return current() ? current()->size() : 1; }
inline bool leader() { return rank() == 0; }
// The device a rank computes on: a requested "cuda" becomes cuda:LOCAL_RANK in a group of CUDA ranks.
at::Device device_of(at::Device requested);

// Gradient averaging over a group, overlapped with the backward. The parameters are split into buckets of about
// bucket_bytes (fp32; a parameter larger than that is a bucket of its own), in reverse order (the backward reaches the
// last layers first). Construction broadcasts rank 0's parameter values (every rank starts from the same weights). Each
// step:
//   arm(root)  before the backward of the step's last micro-batch (earlier micro-batches only accumulate);
//              the parameters that backward cannot reach are final at once (their gradient, or zeros)
//   ...        the backward: each parameter's post-accumulate-grad hook copies its gradient into its bucket;
//              a full bucket starts its allreduce once every bucket before it has started (the same order on
//              every rank)
//   finish()   starts what is left, waits, and leaves the average over the ranks in every parameter's .grad
//              (fp32 ones view their bucket)
// Without arm() (a step function that does not call it), finish() does all of it after the backward.
class GradSync {
 public:
  // bucket_bytes 0: JET_DIST_BUCKET_MB (default 25) MiB.
  GradSync(Group& group, const model::ParamList& params, int64_t bucket_bytes = 0);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;
  void arm(const at::Tensor& root);
  void finish();
  size_t buckets() const { return buckets_.size(); }
  // The share of the buckets (over all finished steps) whose allreduce started before finish(): the overlap.
  double overlapped() const { return started_ ? double(started_early_) / double(started_) : 0.0; }
  void on_grad(size_t i);  // the hook of parameter i (internal)

 private:
  struct Bucket {
    at::Tensor flat;  // fp32 on the group's device
    size_t missing = 0;
  };
  void report(size_t i);  // parameter i's gradient is final: into its bucket
  void start_ready();     // buckets from next_ on, in order, while complete

  Group& group_;
  model::ParamList params_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  std::vector<int64_t> offset_of_;
  std::vector<bool> reported_;
  size_t next_ = 0;
  bool armed_ = false, finishing_ = false;
  int64_t started_ = 0, started_early_ = 0;
  std::mutex mu_;
};

}  // namespace jet::postnas::dist
