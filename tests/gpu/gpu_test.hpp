// GPU tests skip without a CUDA device, and fail instead under
// CUVI_REQUIRE_GPU=1 (set it on a GPU machine so a skip cannot hide).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <cuvi.hpp>

#define CUVI_REQUIRE_CUDA()                                                                  \
  do {                                                                                       \
    if (!::cuvi::cuda_available()) {                                                         \
      const char* req = std::getenv("CUVI_REQUIRE_GPU");                                     \
      if (req && std::string(req) == "1") FAIL() << "CUVI_REQUIRE_GPU=1 but no CUDA device"; \
      GTEST_SKIP() << "no CUDA device";                                                      \
    }                                                                                        \
  } while (0)
