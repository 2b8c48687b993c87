// The mlp_jet tile kernels for the baseline target of the build (SSE2 on x86-64, NEON on arm64).
#define FASTPINN_MLPJET_NS base
#include "mlp_jet_kernel.h"
