// The Python module fastpinn._C. It exposes only build diagnostics; its purpose is that importing it loads
// this shared library, whose static initialisers register the ops (fastpinn_ops.cpp and the kernel files).
// Kept free of ATen headers: it compiles in seconds.
#include <pybind11/pybind11.h>
#include <torch/version.h>  // TORCH_VERSION of the headers we are built against (a tiny header)

#include <string>

#ifndef FASTPINN_CXX_COMPILER
#define FASTPINN_CXX_COMPILER "unknown"
#endif
#ifndef FASTPINN_CUDA_COMPILER
#define FASTPINN_CUDA_COMPILER ""
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, mod) {
  // Make sure torch's own Python module is initialised whichever is imported first.
  py::module_::import("torch");
  // The schemas exist now (static initialisers ran when the library was loaded): register their Python fake
  // implementations too, so that importing fastpinn._C by itself leaves the ops usable under torch.compile.
  py::module_::import("fastpinn.ops.fake").attr("register_fakes")();
  mod.doc() = "fastpinn compiled ops; importing this module registers torch.ops.fastpinn.*";
  mod.attr("TORCH_VERSION") = TORCH_VERSION;
  mod.def(
      "build_info",
      [] {
        py::dict info;
#ifdef FASTPINN_WITH_CUDA
        info["cuda"] = true;
#else
        info["cuda"] = false;
#endif
        info["torch_version"] = std::string(TORCH_VERSION);
        info["compiler"] = std::string(FASTPINN_CXX_COMPILER);
        info["cuda_compiler"] = std::string(FASTPINN_CUDA_COMPILER);
#ifdef FASTPINN_OPENMP
        info["openmp"] = true;
#else
        info["openmp"] = false;
#endif
        return info;
      },
      "Build configuration: {'cuda': bool, 'torch_version': str, 'compiler': str, 'cuda_compiler': str, "
      "'openmp': bool}.");
}
