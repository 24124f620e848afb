// main() of cuvi_test_gpu_ppl, the second build of the device-generic ppl
// tests (tests/ppl/*.cpp, compiled once): it makes cuda:0 the default device
// before any test runs, so every tensor a test creates without naming a
// device, every float-parameter distribution, plate index and param lives on
// the GPU. Without a CUDA device nothing runs: the tests are reported skipped
// (in the form ctest recognises), or failed under CUVI_REQUIRE_GPU=1 so that
// a skip cannot hide on a GPU machine. Listing (test discovery) always works.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <cuvi.hpp>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!GTEST_FLAG_GET(list_tests) && !cuvi::cuda_available()) {
    const char* req = std::getenv("CUVI_REQUIRE_GPU");
    const std::string filter = GTEST_FLAG_GET(filter);
    if (req && std::string(req) == "1") {
      std::printf("[  FAILED  ] %s: CUVI_REQUIRE_GPU=1 but no CUDA device\n", filter.c_str());
      return 1;
    }
    std::printf("[  SKIPPED ] %s: no CUDA device\n", filter.c_str());
    return 0;
  }
  if (!GTEST_FLAG_GET(list_tests)) cuvi::set_default_device(cuvi::Device::cuda(0));
  return RUN_ALL_TESTS();
}
