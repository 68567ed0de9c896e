// The CUDA side of the engine behind a plain interface (no CUDA headers): a stream of its own for all
// engine work (graphs cannot be captured on the legacy default stream) and captured decode steps that
// share one memory pool. Built without JET_CUDA, or on the CPU, the stream is a no-op and capture()
// throws.
#pragma once
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace jet::engine {

// Whether this build can capture CUDA graphs (JET_CUDA).
bool cuda_graphs_built();
// The GPU's name ("NVIDIA H100 80GB HBM3"), and its free memory in bytes (cudaMemGetInfo).
std::string cuda_device_name(at::Device device);
int64_t cuda_free_bytes(at::Device device);

class EngineStream {
 public:
  explicit EngineStream(at::Device device);  // a pool stream on CUDA devices
  ~EngineStream();
  // Makes the stream current (on its device) for the lifetime of a Use.
  class Use {
   public:
    explicit Use(const EngineStream& s);
    ~Use();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class DecodeGraphs;

// One captured step. capture() records body's kernels (it must run under EngineStream::Use and must
// not synchronise with the host); draws from gen advance with every replay.
class DecodeGraph {
 public:
  DecodeGraph();
  ~DecodeGraph();
  void capture(const std::function<void()>& body, const at::Generator& gen, DecodeGraphs& pool);
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The memory pool the graphs of one engine share (they replay one at a time on one stream).
class DecodeGraphs {
 public:
  DecodeGraphs();
  ~DecodeGraphs();

 private:
  friend class DecodeGraph;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jet::engine
