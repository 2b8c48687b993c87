// The mlp_jet tile kernels for the baseline target of the build (SSE2 on x86-64, NEON on arm64): 16-byte
// vectors, the native width there (wider GCC vectors are lowered piecewise, ~20x slower).
#define FASTPINN_MLPJET_NS base
#define FASTPINN_MLPJET_VEC_BYTES 16
#include "mlp_jet_kernel.h"
