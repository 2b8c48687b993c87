// The hidden-layer activations of the fused MLP ops (mlp_jet, mlp_taylor): the enum the tile kernels switch on and
// the one C++ table of their names. Which of them each op implements: kJetActivations (mlp_jet.h),
// kTaylorActivations (mlp_taylor.h); the Python twin of both lists is fastpinn/ops/activations.py.
//
// The ops' schemas take the name (`str activation`), not a number: a schema, an error message or a traced graph then
// says "sin" rather than 1, and Python passes the name it already has (fastpinn.network's registry, the command line)
// instead of keeping a name -> number table in step with this enum. The name is looked up once per call
// (mlp_dispatch.h parse_activation); the kernels only see the enum. This header includes no torch header: the tile
// kernels (compiled once per instruction set) use it.
#pragma once

#include <cstdint>

namespace fastpinn {

enum class Activation : int64_t { kTanh, kSin, kSilu, kSoftplus };

struct ActivationName {
  const char* name;
  Activation activation;
};

// The names the schemas take (fastpinn.network.ACTIVATIONS calls them the same).
constexpr ActivationName kActivationNames[] = {
    {"tanh", Activation::kTanh}, {"sin", Activation::kSin}, {"silu", Activation::kSilu}, {"softplus", Activation::kSoftplus}};

inline const char* activation_name(Activation a) {
  for (const ActivationName& n : kActivationNames)
    if (n.activation == a) return n.name;
  return "?";
}

}  // namespace fastpinn
