// The mlp_jet tile kernels for x86-64 with AVX2 and FMA (compiled with -mavx2 -mfma, see CMakeLists.txt);
// mlp_jet_cpu.cpp calls them only when the CPU running the code has both.
#define FASTPINN_MLPJET_NS avx2
#include "mlp_jet_kernel.h"
