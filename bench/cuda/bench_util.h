// Shared by the CUDA benchmarks: the median time of a GPU workload, measured with CUDA events.
#pragma once
#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>
#include <functional>
#include <vector>

namespace jet::bench {

// fn() run `warmup` times, then `iters` timed runs, each between two CUDA events on the current stream:
// the median in ms.
inline double median_ms(const std::function<void()>& fn, int iters = 50, int warmup = 5) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
    a.record();
    fn();
    b.record();
    b.synchronize();
    t.push_back(a.elapsed_time(b));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace jet::bench
