// The umbrella header: everything a cuvi user needs.
#pragma once

#include "runtime/autograd.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/ops.hpp"
#include "runtime/rng.hpp"
#include "runtime/tensor.hpp"
