// Data parallel on c10d (dist.h): the torchrun environment, the launcher, the process group, bucketed gradients.
#include "postnas/dist.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unordered_set>

#include "core/check.h"

// Gloo's headers do not come with the torch wheel (scripts/gloo_headers.sh); CMake defines JET_GLOO (and c10d's
// USE_C10D_GLOO) for this file when it finds them, JET_NCCL (and USE_C10D_NCCL) in CUDA builds that find nccl.h.
#ifdef JET_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(JET_CUDA) && defined(JET_NCCL)
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

extern char** environ;

namespace jet::postnas::dist {
namespace {

Group* g_current = nullptr;

// The first line of an exception's text (c10 errors: without their C++ backtrace).
std::string first_line(const std::exception& e) {
  const auto* c10e = dynamic_cast<const c10::Error*>(&e);
  std::string s = c10e ? c10e->what_without_backtrace() : e.what();
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// An integer environment variable in [lo, hi]; def when unset.
int env_int(const char* name, int def, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v) return def;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  JET_CHECK(*v && *end == 0 && errno == 0 && x >= lo && x <= hi, "{}='{}': expected an integer in [{}, {}]", name, v,
            lo, hi);
  return static_cast<int>(x);
}

constexpr const char* kWorldVars[] = {"RANK",
                                      "LOCAL_RANK",
                                      "WORLD_SIZE",
                                      "LOCAL_WORLD_SIZE",
                                      "MASTER_ADDR",
                                      "MASTER_PORT",
                                      "TORCHELASTIC_USE_AGENT_STORE"};

std::vector<std::string> own_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  JET_CHECK(f, "--nproc: cannot read /proc/self/cmdline");
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t at = 0; at < all.size();) {
    const size_t end = all.find('\0', at);
    args.push_back(all.substr(at, end == std::string::npos ? std::string::npos : end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return args;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("exited with status {}", WEXITSTATUS(status));
}

}  // namespace

World world_from_env() {
  World w;
  if (!std::getenv("WORLD_SIZE")) {
    for (const char* v : {"RANK", "LOCAL_RANK"})
      JET_CHECK(!std::getenv(v), "{} is set but WORLD_SIZE is not (data parallel needs both, as torchrun sets them)",
                v);
    return w;
  }
  w.size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  JET_CHECK(std::getenv("RANK") || w.size == 1, "WORLD_SIZE={} but RANK is not set", w.size);
  w.rank = env_int("RANK", 0, 0, w.size - 1);
  w.local_rank = env_int("LOCAL_RANK", w.rank, 0, w.size - 1);
  if (w.size == 1) return w;
  if (const char* a = std::getenv("MASTER_ADDR")) w.master_addr = a;
  JET_CHECK(!w.master_addr.empty(), "MASTER_ADDR is empty");
  JET_CHECK(std::getenv("MASTER_PORT"), "WORLD_SIZE={} but MASTER_PORT is not set (the rendezvous store's port)",
            w.size);
  w.master_port = env_int("MASTER_PORT", 0, 1, 65535);
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  w.agent_store = agent && (std::string(agent) == "True" || std::string(agent) == "1");
  return w;
}

void launch(int nproc, std::chrono::seconds timeout) {
  JET_CHECK(nproc >= 1 && nproc <= 1024, "--nproc must be in [1, 1024], got {}", nproc);
  const char* addr_env = std::getenv("MASTER_ADDR");
  const std::string addr = addr_env && *addr_env ? addr_env : "127.0.0.1";
  // The rendezvous store lives here, as torchrun's agent store does: on MASTER_PORT, else a port the kernel
  // picks (no race with other jobs for a "free" port).
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env_int("MASTER_PORT", 0, 0, 65535));
    so.isServer = true;
    so.waitWorkers = false;
    so.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(addr, so);
  } catch (const std::exception& e) {
    JET_FAIL("--nproc: cannot start the rendezvous store on {} ({})", addr, first_line(e));
  }
  const int port = store->getPort();

  const std::vector<std::string> args = own_command_line();
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  JET_CHECK(n > 0, "--nproc: cannot read /proc/self/exe");
  exe[n] = 0;
  std::vector<std::string> base_env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    bool ours = false;
    for (const char* v : kWorldVars) ours |= key == v;
    if (!ours) base_env.push_back(kv);
  }
  // As torchrun: without OMP_NUM_THREADS, the ranks share the cores.
  if (!std::getenv("OMP_NUM_THREADS"))
    base_env.push_back(fmt::format("OMP_NUM_THREADS={}", std::max(1u, std::thread::hardware_concurrency() / nproc)));

  // Everything the children need is built before the first fork (after it, only exec).
  std::vector<std::vector<std::string>> envs(nproc, base_env);
  for (int r = 0; r < nproc; ++r)
    for (const std::string& kv :
         {fmt::format("RANK={}", r), fmt::format("LOCAL_RANK={}", r), fmt::format("WORLD_SIZE={}", nproc),
          fmt::format("LOCAL_WORLD_SIZE={}", nproc), "MASTER_ADDR=" + addr, fmt::format("MASTER_PORT={}", port),
          std::string("TORCHELASTIC_USE_AGENT_STORE=True")})
      envs[r].push_back(kv);
  auto pointers = [](std::vector<std::string>& v) {
    std::vector<char*> p;
    for (auto& s : v) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  };
  std::vector<std::string> argv_s = args;
  std::vector<char*> argv = pointers(argv_s);
  std::vector<std::vector<char*>> envp;
  for (auto& e : envs) envp.push_back(pointers(e));

  const pid_t self = getpid();
  std::vector<pid_t> pids;
  auto stop_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) kill(p, sig);
  };
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // the launcher gone (killed): so are its ranks
      if (getppid() != self) _exit(1);
      execve(exe, argv.data(), envp[r].data());
      _exit(127);
    }
    if (pid < 0) {
      stop_all(SIGKILL);
      for (pid_t p : pids) waitpid(p, nullptr, 0);
      JET_FAIL("--nproc: cannot start rank {} ({})", r, strerror(errno));
    }
    pids.push_back(pid);
  }

  // Watch: the first rank to fail stops the others (SIGTERM, then SIGKILL after a grace).
  int alive = nproc, failed = -1, failed_status = 0;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (alive > 0) {
    int status = 0;
    const bool stopping = failed >= 0;
    const pid_t p = waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (p < 0) {
      if (errno == EINTR) continue;
      break;  // no children left
    }
    if (p == 0) {  // stopping, none exited yet
      if (std::chrono::steady_clock::now() > deadline) {
        stop_all(SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    int r = 0;
    while (r < nproc && pids[r] != p) ++r;
    if (r == nproc) continue;  // not a rank
    pids[r] = -1;
    --alive;
    if (failed < 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      failed = r;
      failed_status = status;
      stop_all(SIGTERM);
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
  }
  JET_CHECK(failed < 0, "rank {} of {} {}; the other ranks were stopped", failed, nproc,
            describe_status(failed_status));
}

void check_backend(at::Device device, int ranks) {
  if (device.is_cpu()) {
#ifndef JET_GLOO
    JET_FAIL(
        "data parallel on the CPU needs c10d's Gloo backend, and this build found no gloo headers "
        "(scripts/gloo_headers.sh, then configure again)");
#endif
    return;
  }
#if defined(JET_CUDA) && defined(JET_NCCL)
  JET_CHECK(ranks <= c10::cuda::device_count(), "data parallel: {} ranks but {} CUDA devices (one GPU a rank)", ranks,
            static_cast<int>(c10::cuda::device_count()));
#else
  JET_FAIL(
      "data parallel on CUDA needs c10d's NCCL backend, and this build has none (a JET_CUDA build finds nccl.h "
      "beside the torch wheel or in the CUDA toolkit)");
#endif
}

// ---- Group ---------------------------------------------------------------------------------------

struct Group::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::mutex mu;
  std::vector<c10::intrusive_ptr<c10d::Work>> pending;
};

void Group::fail(const std::exception& e) const {
  JET_FAIL("data parallel, rank {} of {}: {}", world_.rank, world_.size, first_line(e));
}

Group::Group(const World& world, at::Device device, std::chrono::milliseconds timeout)
    : world_(world),
      device_(device.is_cuda() ? at::Device(at::kCUDA, world.local_rank) : at::Device(at::kCPU)),
      impl_(std::make_unique<Impl>()) {
  JET_CHECK(!g_current, "data parallel: one process group at a time");
  JET_CHECK(world.size > 1, "data parallel: a group needs 2 ranks or more");
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(world.master_port);
    so.isServer = world.rank == 0 && !world.agent_store;
    so.numWorkers = world.size;
    so.waitWorkers = false;
    so.timeout = timeout;
    check_backend(device_, world.local_rank + 1);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, so);
#ifdef JET_GLOO
    if (device_.is_cpu())
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
          impl_->store, world.rank, world.size, c10d::ProcessGroupGloo::Options::create_default(timeout));
#endif
#if defined(JET_CUDA) && defined(JET_NCCL)
    if (device_.is_cuda()) {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(world.local_rank));
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, world.rank, world.size, o);
    }
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(e);
  }
  g_current = this;
}

Group::~Group() {
  if (g_current == this) g_current = nullptr;
  try {
    if (impl_->backend) impl_->backend->shutdown();
  } catch (const std::exception&) {
  }
}

void Group::allreduce_sum_async(const at::Tensor& t) {
  try {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    auto work = impl_->backend->allreduce(v, o);
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->pending.push_back(std::move(work));
  } catch (const std::exception& e) {
    fail(e);
  }
}

void Group::wait_all() {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    works.swap(impl_->pending);
  }
  try {
    for (auto& w : works) w->wait();
  } catch (const std::exception& e) {
    fail(e);
  }
}

at::Tensor Group::allreduce_sum(const at::Tensor& t) {
  at::Tensor d = t.to(device_, /*non_blocking=*/false, /*copy=*/true).contiguous();
  allreduce_sum_async(d);
  wait_all();
  return d.to(t.device());
}

void Group::broadcast(at::Tensor& t) {
  c10::NoGradGuard no_grad;
  at::Tensor d = t.to(device_).contiguous();
  try {
    std::vector<at::Tensor> v{d};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->backend->broadcast(v, o)->wait();
  } catch (const std::exception& e) {
    fail(e);
  }
  if (!d.is_same(t)) t.copy_(d);
}

Group* current() { return g_current; }

at::Device device_of(at::Device requested) {
  return g_current && requested.is_cuda() ? g_current->device() : requested;
}

// ---- GradSync ------------------------------------------------------------------------------------

namespace {

struct Hook : torch::autograd::PostAccumulateGradHook {
  Hook(GradSync* s, size_t i) : sync(s), index(i) {}
  void operator()(const torch::autograd::Variable&) override { sync->on_grad(index); }
  GradSync* sync;
  size_t index;
};

}  // namespace

GradSync::GradSync(Group& group, const model::ParamList& params, int64_t bucket_bytes)
    : group_(group), params_(params) {
  c10::NoGradGuard no_grad;
  if (bucket_bytes <= 0) {
    const char* mb = std::getenv("JET_DIST_BUCKET_MB");
    char* end = nullptr;
    const double v = mb ? std::strtod(mb, &end) : 25.0;
    JET_CHECK(!mb || (*mb && *end == 0 && v > 0 && v <= 1 << 20), "JET_DIST_BUCKET_MB='{}': expected a positive number",
              mb ? mb : "");
    bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(v * (1 << 20)));
  }
  const size_t n = params_.size();
  bucket_of_.resize(n);
  offset_of_.resize(n);
  reported_.assign(n, false);
  std::vector<int64_t> sizes;
  std::vector<std::vector<size_t>> members;
  for (size_t k = n; k-- > 0;) {  // reverse: the order the backward finishes them, roughly
    const int64_t numel = params_[k].slot->numel();
    if (members.empty() || (sizes.back() > 0 && (sizes.back() + numel) * 4 > bucket_bytes)) {
      members.emplace_back();
      sizes.push_back(0);
    }
    bucket_of_[k] = members.size() - 1;
    offset_of_[k] = sizes.back();
    sizes.back() += numel;
    members.back().push_back(k);
  }
  for (size_t b = 0; b < members.size(); ++b) {
    Bucket bucket;
    bucket.flat = at::empty({sizes[b]}, at::TensorOptions().dtype(at::kFloat).device(group_.device()));
    bucket.missing = members[b].size();
    // Rank 0's weights on every rank (through the bucket: fp32 holds bf16 values exactly).
    for (size_t k : members[b])
      bucket.flat.narrow(0, offset_of_[k], params_[k].slot->numel()).copy_(params_[k].slot->reshape(-1));
    group_.broadcast(bucket.flat);
    for (size_t k : members[b])
      params_[k].slot->copy_(
          bucket.flat.narrow(0, offset_of_[k], params_[k].slot->numel()).view(params_[k].slot->sizes()));
    buckets_.push_back(std::move(bucket));
  }
  for (size_t k = 0; k < n; ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(*params_[k].slot, std::make_unique<Hook>(this, k));
}

GradSync::~GradSync() {
  for (const auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(*p.slot, nullptr);
}

void GradSync::report(size_t k) {
  c10::NoGradGuard no_grad;
  reported_[k] = true;
  Bucket& b = buckets_[bucket_of_[k]];
  const at::Tensor& g = params_[k].slot->grad();
  at::Tensor dst = b.flat.narrow(0, offset_of_[k], params_[k].slot->numel());
  if (g.defined())
    dst.copy_(g.reshape(-1));
  else
    dst.zero_();
  --b.missing;
}

void GradSync::start_ready() {
  while (next_ < buckets_.size() && buckets_[next_].missing == 0) {
    group_.allreduce_sum_async(buckets_[next_++].flat);
    ++started_;
    started_early_ += !finishing_;
  }
}

void GradSync::arm(const at::Tensor& root) {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = true;
  // The autograd nodes this backward runs; a parameter whose gradient accumulator is not among them is final.
  std::unordered_set<const torch::autograd::Node*> reach;
  std::vector<torch::autograd::Node*> todo;
  if (const auto fn = root.grad_fn()) {
    reach.insert(fn.get());
    todo.push_back(fn.get());
  }
  while (!todo.empty()) {
    torch::autograd::Node* node = todo.back();
    todo.pop_back();
    for (const auto& edge : node->next_edges())
      if (edge.function && reach.insert(edge.function.get()).second) todo.push_back(edge.function.get());
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    if (reported_[k]) continue;
    const auto acc = torch::autograd::impl::try_get_grad_accumulator(*params_[k].slot);
    if (!acc || !reach.count(acc.get())) report(k);
  }
  start_ready();
}

void GradSync::on_grad(size_t k) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!armed_ || reported_[k]) return;
  report(k);
  start_ready();
}

void GradSync::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finishing_ = true;
    for (size_t k = 0; k < params_.size(); ++k)
      if (!reported_[k]) report(k);
    start_ready();
    finishing_ = false;
  }
  group_.wait_all();
  c10::NoGradGuard no_grad;
  for (Bucket& b : buckets_) b.flat.div_(group_.size());
  for (size_t k = 0; k < params_.size(); ++k) {
    at::Tensor& slot = *params_[k].slot;
    const at::Tensor avg = buckets_[bucket_of_[k]].flat.narrow(0, offset_of_[k], slot.numel()).view(slot.sizes());
    slot.mutable_grad() = slot.scalar_type() == at::kFloat ? avg : avg.to(slot.scalar_type());
    reported_[k] = false;
  }
  for (Bucket& b : buckets_) b.missing = 0;
  for (size_t k = 0; k < params_.size(); ++k) ++buckets_[bucket_of_[k]].missing;
  next_ = 0;
  armed_ = false;
}

}  // namespace jet::postnas::dist
