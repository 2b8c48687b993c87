// The mlp_jet tile kernels for x86-64 with AVX-512F (compiled with -mavx512f -mavx512dq -mfma, 64-byte vectors,
// see CMakeLists.txt); mlp_jet_cpu.cpp calls them only when the CPU running the code has AVX-512F and DQ.
#define FASTPINN_MLPJET_NS avx512
#define FASTPINN_MLPJET_VEC_BYTES 64
#include "mlp_jet_kernel.h"
