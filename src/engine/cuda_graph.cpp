// CUDA streams and graphs for the engine (at::cuda::CUDAGraph); stand-ins that fail when the build
// has no CUDA.
#include "engine/cuda_graph.h"

#include <optional>

#include "core/check.h"

#ifdef JET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <cuda_runtime_api.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace jet::engine {

#ifdef JET_CUDA

bool cuda_graphs_built() { return true; }

namespace {
c10::DeviceIndex index_of(at::Device d) { return d.has_index() ? d.index() : c10::cuda::current_device(); }
}  // namespace

std::string cuda_device_name(at::Device device) {
  return at::cuda::getDeviceProperties(index_of(device))->name;
}

int64_t cuda_free_bytes(at::Device device) {
  c10::cuda::CUDAGuard guard(index_of(device));
  size_t free = 0, total = 0;
  JET_CHECK(cudaMemGetInfo(&free, &total) == cudaSuccess, "cudaMemGetInfo failed");
  return static_cast<int64_t>(free);
}

struct EngineStream::Impl {
  std::optional<c10::cuda::CUDAStream> stream;
};

EngineStream::EngineStream(at::Device device) : impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) return;
  const c10::DeviceIndex index = index_of(device);
  // Pool streams do not wait for the default stream: finish what it holds (the weights' upload).
  c10::cuda::getCurrentCUDAStream(index).synchronize();
  impl_->stream = c10::cuda::getStreamFromPool(false, index);
}

struct EngineStream::Use::Impl {
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

EngineStream::Use::Use(const EngineStream& s) : impl_(std::make_unique<Impl>()) {
  if (s.impl_->stream) impl_->guard.emplace(*s.impl_->stream);
}

struct DecodeGraphs::Impl {
  c10::MempoolId_t pool = at::cuda::graph_pool_handle();
};

struct DecodeGraph::Impl {
  at::cuda::CUDAGraph graph;
};

void DecodeGraph::capture(const std::function<void()>& body, const at::Generator& gen, DecodeGraphs& pool) {
  JET_CHECK(!impl_, "DecodeGraph: already captured");
  impl_ = std::make_unique<Impl>();
  if (gen.device().is_cuda()) impl_->graph.register_generator_state(gen);
  impl_->graph.capture_begin(pool.impl_->pool);
  try {
    body();
  } catch (...) {
    try {  // end the capture so the stream is usable again; the error to report is the body's
      impl_->graph.capture_end();
    } catch (...) {
    }
    impl_.reset();
    throw;
  }
  impl_->graph.capture_end();
}

void DecodeGraph::replay() {
  JET_CHECK(impl_, "DecodeGraph: replay before capture");
  impl_->graph.replay();
}

#else

bool cuda_graphs_built() { return false; }
std::string cuda_device_name(at::Device) { JET_FAIL("this build has no CUDA (-DJET_CUDA=ON)"); }
int64_t cuda_free_bytes(at::Device) { JET_FAIL("this build has no CUDA (-DJET_CUDA=ON)"); }

struct EngineStream::Impl {};
EngineStream::EngineStream(at::Device) : impl_(std::make_unique<Impl>()) {}
struct EngineStream::Use::Impl {};
EngineStream::Use::Use(const EngineStream&) {}
struct DecodeGraphs::Impl {};
struct DecodeGraph::Impl {};

void DecodeGraph::capture(const std::function<void()>&, const at::Generator&, DecodeGraphs&) {
  JET_FAIL("CUDA graphs need a build with -DJET_CUDA=ON");
}

void DecodeGraph::replay() { JET_FAIL("CUDA graphs need a build with -DJET_CUDA=ON"); }

#endif

EngineStream::~EngineStream() = default;
EngineStream::Use::~Use() = default;
DecodeGraphs::DecodeGraphs() : impl_(std::make_unique<Impl>()) {}
DecodeGraphs::~DecodeGraphs() = default;
DecodeGraph::DecodeGraph() = default;
DecodeGraph::~DecodeGraph() = default;

}  // namespace jet::engine
