// The umbrella header: everything a cuvi user needs.
#pragma once

#include "runtime/autograd.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/ops.hpp"
#include "runtime/rng.hpp"
#include "runtime/tensor.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/constraints.hpp"
#include "ppl/distributions.hpp"
#include "ppl/infer.hpp"
#include "ppl/nn.hpp"
#include "ppl/optim.hpp"
#include "ppl/parallel.hpp"
#include "ppl/param_store.hpp"
#include "ppl/poutine.hpp"
#include "ppl/transformed.hpp"
