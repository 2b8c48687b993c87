// Tile kernels of fastpinn::mlp_jet_{forward,backward} (semantics: mlp_jet.h). Included by one translation
// unit per instruction set, each defining FASTPINN_MLPJET_NS (the namespace) and compiled with its own flags
// (mlp_jet_base.cpp: the baseline target; mlp_jet_avx2.cpp: -mavx2 -mfma; mlp_jet_avx512.cpp: -mavx512f with
// 64-byte vectors). No torch header: these files
// compile in seconds and nothing in them depends on the ATen build.
//
// Layout of one tile in scratch: a layer's jet is [neuron][channel][kTile] (points innermost), so that
// * the affine map of all C channels at once is one [out, in] x [in, C * kTile] product whose inner loop runs
//   over C * kTile contiguous elements (register-blocked: 4 output rows x 2 SIMD vectors of accumulators);
// * the activation (tanh, sin, silu, softplus) and the jet rules are lane-wise over the kTile points of one neuron;
// * the weight gradient of a layer is the [out, C * kTile] x [C * kTile, in] product of the output gradient
//   and the stored input jet, again over contiguous rows.
// A tile's jets (all layers, all channels: ~ L * width * C * kTile elements, e.g. 9 * 20 * 4 * 32 floats =
// 92 KiB for Burgers) stay in L2 between the forward and the backward sweep of the tile.
#include <cstdint>
#include <cstring>
#include <utility>

#include "mlp_jet.h"

#ifndef FASTPINN_MLPJET_NS
#error "define FASTPINN_MLPJET_NS before including mlp_jet_kernel.h"
#endif

namespace fastpinn {
namespace mlpjet {
namespace FASTPINN_MLPJET_NS {
namespace {

#define FI inline __attribute__((always_inline))

// SIMD width in bytes: 32 (AVX2; two SSE/NEON halves on the baseline target) unless the including file sets it.
#ifndef FASTPINN_MLPJET_VEC_BYTES
#define FASTPINN_MLPJET_VEC_BYTES 32
#endif
constexpr int kVecBytes = FASTPINN_MLPJET_VEC_BYTES;
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  using Lane = int32_t;
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecOf<double> {
  using Lane = int64_t;
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using V = typename VecOf<T>::V;
template <typename T>
using IV = typename VecOf<T>::I;
template <typename T>
constexpr int64_t kLanes = kVecBytes / static_cast<int64_t>(sizeof(T));
static_assert(kTile % (2 * kLanes<float>) == 0, "kTile must hold a whole number of pairs of SIMD vectors");

template <typename T>
FI V<T> load(const T* p) {
  V<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
FI void store(T* p, V<T> v) {
  std::memcpy(p, &v, sizeof(v));
}
template <typename T>
FI V<T> splat(T x) {
  return x - V<T>{};  // x - (+0) is x for every x (-0 included), so this folds to a broadcast; V{} + x does not
}
template <typename T>
FI T hsum(V<T> v) {
  T s = 0;
  for (int64_t l = 0; l < kLanes<T>; ++l) s += v[l];
  return s;
}

// ---- tanh, lane-wise, to a few ulps in float and double --------------------------------------------------
// tanh|z| = -m / (2 + m) with m = expm1(-2|z|) in (-1, 0]: no cancellation for small |z| (unlike
// (1 - e) / (1 + e)). expm1(x) = 2^k expm1(r) + (2^k - 1), x = k ln2 + r, |r| <= ln2 / 2, with expm1(r) a
// Taylor polynomial (truncation < 2e-17 (double, degree 13) / 1.5e-8 (float, degree 8) relative to r).
// |z| is clamped to 20: 1 - tanh(20) = 8e-18, below half an ulp of 1 in double.
template <typename T>
struct TanhConst;
template <>
struct TanhConst<float> {
  static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  static constexpr int32_t magic_bits = 0x4B400000;
  static constexpr int shift = 23;
  static constexpr int32_t bias = 127;
  static constexpr float ln2_hi = 0.693359375f;  // 9 significant bits: k * ln2_hi is exact
  static constexpr float ln2_lo = -2.12194440e-4f;
  static constexpr int degree = 8;
};
template <>
struct TanhConst<double> {
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int64_t magic_bits = 0x4338000000000000LL;
  static constexpr int shift = 52;
  static constexpr int64_t bias = 1023;
  static constexpr double ln2_hi = 6.93147180369123816490e-01;  // trailing zero bits: k * ln2_hi is exact
  static constexpr double ln2_lo = 1.90821492927058770002e-10;
  static constexpr int degree = 13;
};

// tanh(z) and its derivative s = 1 - tanh(z)^2. s is computed as 4 e / (2 + m)^2 with e = 1 + m = exp(-2|z|)
// (exact algebra), not as 1 - a^2: near saturation 1 - a^2 cancels and would carry a's rounding error
// amplified by 1 / s into every tangent and second derivative.
// exp(x) and expm1(x) for x already clamped to where 2^round(x / ln2) is a normal number (|x| <= 87 in float,
// 708 in double).
template <typename T>
FI void vexp_parts(V<T> x, V<T>& m, V<T>& e) {
  using C = TanhConst<T>;
  using I = IV<T>;
  const V<T> y = x * T(1.4426950408889634074) + C::magic;
  const V<T> kf = y - C::magic;
  const V<T> r = (x - kf * C::ln2_hi) - kf * C::ln2_lo;
  // Horner from the top: p = r + r^2 (1/2! + r (1/3! + ... + r / degree!)).
  T coef[14];
  coef[0] = 1;
  for (int n = 1; n <= C::degree; ++n) coef[n] = coef[n - 1] / T(n);
  V<T> p = splat<T>(coef[C::degree]);
  for (int n = C::degree - 1; n >= 2; --n) p = p * r + coef[n];
  p = r + (r * r) * p;
  const I ki = reinterpret_cast<I>(y) - C::magic_bits;
  const V<T> pow2 = reinterpret_cast<V<T>>((ki + C::bias) << C::shift);
  m = pow2 * p + (pow2 - T(1));  // expm1(x)
  e = pow2 * p + pow2;           // exp(x)
}

// tanh(z) and its derivative s = 1 - tanh(z)^2. s is computed as 4 e / (2 + m)^2 with e = 1 + m = exp(-2|z|)
// (exact algebra), not as 1 - a^2: near saturation 1 - a^2 cancels and would carry a's rounding error
// amplified by 1 / s into every tangent and second derivative.
template <typename T>
FI void vtanh(V<T> z, V<T>& a, V<T>& s) {
  using I = IV<T>;
  using Lane = typename VecOf<T>::Lane;
  const I sign_mask = I{} + static_cast<Lane>(static_cast<Lane>(1) << (sizeof(T) * 8 - 1));
  const I zi = reinterpret_cast<I>(z);
  const V<T> az = reinterpret_cast<V<T>>(zi & ~sign_mask);
  V<T> x = splat<T>(T(-2)) * az;
  const V<T> lo = splat<T>(T(-40));
  x = x < lo ? lo : x;  // NaN stays NaN (the comparison is false) and propagates
  V<T> m, e;
  vexp_parts<T>(x, m, e);
  const V<T> inv = T(1) / (m + T(2));
  const V<T> t = -m * inv;
  a = reinterpret_cast<V<T>>(reinterpret_cast<I>(t) | (zi & sign_mask));
  s = (T(4) * e) * (inv * inv);
}

// The logistic sigma(z) = 1 / (1 + exp(-z)) from u = exp(-|z|) in (0, 1] (no overflow), with 1 - sigma and
// 1 - 2 sigma = -+expm1(-|z|) / (1 + u) without cancellation; u and log1p(u) serve softplus. -|z| is clamped at
// -87 (float) / -708 (double), which changes sigma only where it is below 1e-37 / 1e-307 or within that of 1.
template <typename T>
FI void vsigmoid(V<T> z, V<T>& sig, V<T>& one_minus, V<T>& one_minus_2, V<T>& u) {
  using I = IV<T>;
  using Lane = typename VecOf<T>::Lane;
  constexpr T bound = sizeof(T) == 4 ? T(87) : T(708);
  const I sign_mask = I{} + static_cast<Lane>(static_cast<Lane>(1) << (sizeof(T) * 8 - 1));
  V<T> x = reinterpret_cast<V<T>>(reinterpret_cast<I>(z) | sign_mask);  // -|z|
  x = x < -bound ? splat<T>(-bound) : x;  // NaN stays NaN
  V<T> m;
  vexp_parts<T>(x, m, u);
  const V<T> inv = T(1) / (T(1) + u);
  const V<T> small = u * inv;  // 1 / (1 + exp(|z|))
  const auto pos = z >= T(0);
  sig = pos ? inv : small;
  one_minus = pos ? small : inv;
  one_minus_2 = (pos ? m : -m) * inv;
}

// log1p(u) for u in [0, 1]: 2 atanh(s) with s = u / (2 + u) in [0, 1/3], the odd series 2 s (1 + s^2/3 + s^4/5 +
// ...) of positive terms (relative accuracy of s, a few ulps); truncated after s^14 (float: next term below
// 9^-8 / 17 = 1.4e-9 relative) / s^32 (double: next below 9^-17 / 35 = 1.7e-18).
template <typename T>
FI V<T> vlog1p_unit(V<T> u) {
  constexpr int terms = sizeof(T) == 4 ? 8 : 17;
  const V<T> s = u / (T(2) + u);
  const V<T> s2 = s * s;
  V<T> p = splat<T>(T(1) / T(2 * terms - 1));
  for (int n = terms - 2; n >= 0; --n) p = p * s2 + T(1) / T(2 * n + 1);
  return T(2) * s * p;
}

// ---- sin and cos, lane-wise, to about one ulp of 1 (absolute) in float and double -------------------------
// Range reduction z = k pi/2 + r, k = round(z 2/pi), |r| <= pi/4 (+ rounding), with pi/2 = c1 + c2 + c3 + rest
// (Cody-Waite): c1 and c2 have few significant bits (float 8 and 11, double 33 and 32), so k c1 and k c2 are exact
// products for |k| < 2^13 (float) / 2^20 (double), i.e. |z| < 12868 / 1.6e6; z - k c1 is exact (Sterbenz: z and
// k c1 are within a factor 2 when k != 0), z - k c1 - k c2 and the subtraction of k c3 round once each, and
// |k rest| < 2^13 * 1.8e-15 (float) / 2^20 * 1.1e-37 (double). So r is within ~1 ulp(pi/4) (absolute) of the
// exact reduced argument. sin r and cos r are Taylor polynomials on |r| <= pi/4 (+ a few ulps): float up to r^9 /
// r^10 (next terms r^11/11!, r^12/12! below 2e-9 relative), double up to r^17 / r^18 (next below 2e-19 relative),
// evaluated by Horner (a few ulps). The quadrant k mod 4 picks +-sin r / +-cos r. Total: a few ulps of 1
// absolute, the rounding of the float32/float64 result itself. Beyond |z| = 12868 (float) / 1.6e6 (double) the
// products k c1, k c2 round and the error grows like |z| eps, the size of z's own representation error there
// (a PINN's pre-activations are orders of magnitude smaller). NaN and +-inf give NaN.
template <typename T>
struct SinConst;
template <>
struct SinConst<float> {
  static constexpr float c1 = 1.5703125f;                 // 0x1.92p+0
  static constexpr float c2 = 4.8375129699707031250e-4f;  // 0x1.fb4p-12
  static constexpr float c3 = 7.5497901264043315314e-8f;  // pi/2 - c1 - c2, rounded
  static constexpr int sin_terms = 5;                     // r, r^3, ..., r^9
  static constexpr int cos_terms = 6;                     // 1, r^2, ..., r^10
};
template <>
struct SinConst<double> {
  static constexpr double c1 = 1.5707963267341256141662598;  // 0x1.921fb544p+0
  static constexpr double c2 = 6.0771005063039659765e-11;    // 0x1.0b4611a6p-34
  static constexpr double c3 = 2.0222662487959506e-21;       // 0x1.3198a2e037073p-69
  static constexpr int sin_terms = 9;                        // r, r^3, ..., r^17
  static constexpr int cos_terms = 10;                       // 1, r^2, ..., r^18
};

template <typename T>
FI void vsincos(V<T> z, V<T>& sn, V<T>& cs) {
  using C = SinConst<T>;
  using TC = TanhConst<T>;  // the round-to-integer constants
  using I = IV<T>;
  using Lane = typename VecOf<T>::Lane;
  const V<T> y = z * T(0.63661977236758134308) + TC::magic;  // z 2/pi rounded to an integer in the low bits
  const V<T> kf = y - TC::magic;
  const I k = reinterpret_cast<I>(y) - TC::magic_bits;
  const V<T> r = ((z - kf * C::c1) - kf * C::c2) - kf * C::c3;
  const V<T> r2 = r * r;
  // sin r = r (1 - r^2/(2*3) (1 - r^2/(4*5) (1 - ...))), cos r = 1 - r^2/(1*2) (1 - r^2/(3*4) (1 - ...)).
  V<T> ps = splat<T>(T(1));
  for (int n = C::sin_terms - 1; n >= 1; --n) ps = T(1) - r2 * ps * (T(1) / (T(2 * n) * T(2 * n + 1)));
  V<T> pc = splat<T>(T(1));
  for (int n = C::cos_terms - 1; n >= 1; --n) pc = T(1) - r2 * pc * (T(1) / (T(2 * n - 1) * T(2 * n)));
  const V<T> s0 = r * ps, c0 = pc;
  const I one = I{} + static_cast<Lane>(1), two = I{} + static_cast<Lane>(2);
  const I swap = (k & one) != 0;  // odd quadrant: sin z = +-cos r, cos z = -+sin r
  constexpr int sign_shift = sizeof(T) * 8 - 2;  // bit 1 of k to the sign bit
  const V<T> s_sel = swap ? c0 : s0;
  const V<T> c_sel = swap ? s0 : c0;
  sn = reinterpret_cast<V<T>>(reinterpret_cast<I>(s_sel) ^ ((k & two) << sign_shift));
  cs = reinterpret_cast<V<T>>(reinterpret_cast<I>(c_sel) ^ (((k + one) & two) << sign_shift));
}

// ---- the activations' derivatives -----------------------------------------------------------------------
// Act::forward gives phi(z), phi'(z) and phi''(z); Act::higher the second and third derivatives from z, phi and
// phi' (what a tile's forward state keeps), so the jet rules below are one code for every activation.
constexpr Activation kTanh = Activation::kTanh, kSin = Activation::kSin, kSilu = Activation::kSilu,
                     kSoftplus = Activation::kSoftplus;
template <typename T, Activation A>
struct Act;
template <typename T>
struct Act<T, kTanh> {
  // With s = phi' = 1 - a^2: phi'' = -2 a s, phi''' = -2 s (s - 2 a^2).
  static FI void forward(V<T> z, V<T>& a, V<T>& d1, V<T>& d2) {
    vtanh<T>(z, a, d1);
    d2 = T(-2) * a * d1;
  }
  static FI void higher(V<T>, V<T> a, V<T> d1, V<T>& d2, V<T>& d3) {
    d2 = T(-2) * a * d1;
    d3 = T(-2) * d1 * (d1 - T(2) * (a * a));
  }
};
template <typename T>
struct Act<T, kSin> {  // sin' = cos, sin'' = -sin, sin''' = -cos
  static FI void forward(V<T> z, V<T>& a, V<T>& d1, V<T>& d2) {
    vsincos<T>(z, a, d1);
    d2 = -a;
  }
  static FI void higher(V<T>, V<T> a, V<T> d1, V<T>& d2, V<T>& d3) {
    d2 = -a;
    d3 = -d1;
  }
};
// silu(z) = z sigma(z). With p = sigma' = sigma (1 - sigma), sigma'' = p (1 - 2 sigma), sigma''' = p (1 - 6 p):
// silu' = sigma + z p, silu'' = p (2 + z (1 - 2 sigma)), silu''' = p (3 (1 - 2 sigma) + z (1 - 6 p)).
template <typename T>
struct Act<T, kSilu> {
  static FI void forward(V<T> z, V<T>& a, V<T>& d1, V<T>& d2) {
    V<T> sig, om, om2, u;
    vsigmoid<T>(z, sig, om, om2, u);
    const V<T> p = sig * om;
    a = z * sig;
    d1 = sig + z * p;
    d2 = p * (T(2) + z * om2);
  }
  static FI void higher(V<T> z, V<T>, V<T>, V<T>& d2, V<T>& d3) {
    V<T> sig, om, om2, u;
    vsigmoid<T>(z, sig, om, om2, u);
    const V<T> p = sig * om;
    d2 = p * (T(2) + z * om2);
    d3 = p * (T(3) * om2 + z * (T(1) - T(6) * p));
  }
};
// softplus(z) = log(1 + e^z) = max(z, 0) + log1p(exp(-|z|)); its derivatives: sigma, p = sigma (1 - sigma) and
// p (1 - 2 sigma).
template <typename T>
struct Act<T, kSoftplus> {
  static FI void forward(V<T> z, V<T>& a, V<T>& d1, V<T>& d2) {
    V<T> sig, om, om2, u;
    vsigmoid<T>(z, sig, om, om2, u);
    a = (z > T(0) ? z : V<T>{}) + vlog1p_unit<T>(u);
    d1 = sig;
    d2 = sig * om;
  }
  static FI void higher(V<T> z, V<T>, V<T>, V<T>& d2, V<T>& d3) {
    V<T> sig, om, om2, u;
    vsigmoid<T>(z, sig, om, om2, u);
    d2 = sig * om;
    d3 = d2 * om2;
  }
};

// ---- products -----------------------------------------------------------------------------------------
// Rows of output per register block: 8 with 64-byte vectors (32 registers: 16 accumulators), else 4 (16
// registers: 8 accumulators), each row two SIMD vectors wide.
constexpr int kRowBlock = kVecBytes == 64 ? 8 : 4;

// out[j, 0:2NL] (=|+=) sum_i w(j, i) in[i, 0:2NL] for j < JB, with w(j, i) = w[j * sj + i * si] (so the same
// kernel serves W and W^T): one column chunk of two SIMD vectors.
template <typename T, int JB, bool ACC>
FI void matmul_chunk(const T* w, int64_t sj, int64_t si, int64_t inner, const T* in, int64_t in_ld, T* out,
                     int64_t out_ld) {
  constexpr int64_t NL = kLanes<T>;
  V<T> acc[JB][2];
  for (int jb = 0; jb < JB; ++jb) {
    acc[jb][0] = ACC ? load(out + jb * out_ld) : V<T>{};
    acc[jb][1] = ACC ? load(out + jb * out_ld + NL) : V<T>{};
  }
  for (int64_t i = 0; i < inner; ++i) {
    const V<T> h0 = load(in + i * in_ld);
    const V<T> h1 = load(in + i * in_ld + NL);
    for (int jb = 0; jb < JB; ++jb) {
      const V<T> wv = splat<T>(w[jb * sj + i * si]);
      acc[jb][0] += wv * h0;
      acc[jb][1] += wv * h1;
    }
  }
  for (int jb = 0; jb < JB; ++jb) {
    store(out + jb * out_ld, acc[jb][0]);
    store(out + jb * out_ld + NL, acc[jb][1]);
  }
}

// out[j, 0:len] (=|+=) sum_i w(j, i) in[i, 0:len] for j < rows; len is a multiple of 2 * kLanes. The column
// chunks are the outer loop: one chunk of `in` ([inner, 2NL], e.g. 256 x 128 B = 32 KiB) stays in L1 while
// every row block reads it; the weights, read as scalars, are reused from cache lines 16 at a time.
template <typename T, bool ACC = false>
void matmul(const T* w, int64_t sj, int64_t si, int64_t rows, int64_t inner, const T* in, int64_t in_ld, T* out,
            int64_t out_ld, int64_t len) {
  constexpr int64_t JB = kRowBlock;
  for (int64_t k = 0; k < len; k += 2 * kLanes<T>) {
    int64_t j = 0;
    for (; j + JB <= rows; j += JB)
      matmul_chunk<T, JB, ACC>(w + j * sj, sj, si, inner, in + k, in_ld, out + j * out_ld + k, out_ld);
    for (; j + 2 <= rows; j += 2)
      matmul_chunk<T, 2, ACC>(w + j * sj, sj, si, inner, in + k, in_ld, out + j * out_ld + k, out_ld);
    for (; j < rows; ++j) matmul_chunk<T, 1, ACC>(w + j * sj, sj, si, inner, in + k, in_ld, out + j * out_ld + k, out_ld);
  }
}

// One butterfly stage of an in-register transpose of NL rows of NL lanes: rows k and k + H (k & H == 0) swap
// their off-diagonal H x H sub-blocks. After the stages H = NL/2, ..., 1, row k holds column k.
template <typename T, int64_t H, size_t... L>
FI V<T> swap_lo(V<T> a, V<T> b, std::index_sequence<L...>) {
  return __builtin_shufflevector(a, b, ((L & H) ? kLanes<T> + L - H : L)...);
}
template <typename T, int64_t H, size_t... L>
FI V<T> swap_hi(V<T> a, V<T> b, std::index_sequence<L...>) {
  return __builtin_shufflevector(a, b, ((L & H) ? kLanes<T> + L : L + H)...);
}
template <typename T, int64_t H>
FI void transpose_stages(V<T>* r) {
  constexpr auto lanes = std::make_index_sequence<kLanes<T>>{};
  for (int64_t k = 0; k < kLanes<T>; ++k) {
    if (k & H) continue;
    const V<T> lo = swap_lo<T, H>(r[k], r[k + H], lanes), hi = swap_hi<T, H>(r[k], r[k + H], lanes);
    r[k] = lo;
    r[k + H] = hi;
  }
  if constexpr (H > 1) transpose_stages<T, H / 2>(r);
}

// at[c, i] = a[i, c] for i < n, c < ct, and zero for n <= i < ld (the padding columns of the weight gradient);
// ct and ld are multiples of kLanes. Blocks of kLanes x kLanes are transposed in registers (a scalar copy took
// ~10 % of a wide layer's backward).
template <typename T>
void transpose_padded(const T* a, int64_t n, int64_t ct, T* at, int64_t ld) {
  constexpr int64_t NL = kLanes<T>;
  for (int64_t i0 = 0; i0 < ld; i0 += NL) {
    for (int64_t c0 = 0; c0 < ct; c0 += NL) {
      V<T> r[NL];
      for (int64_t k = 0; k < NL; ++k) r[k] = i0 + k < n ? load(a + (i0 + k) * ct + c0) : V<T>{};
      transpose_stages<T, NL / 2>(r);
      for (int64_t k = 0; k < NL; ++k) store(at + (c0 + k) * ld + i0, r[k]);
    }
  }
}

// gw[j * ldw + i] += sum_k g[j, k] a[i, k] (k < len, a multiple of kLanes) for j < rows, i < cols.
template <typename T, int JB, int IB>
FI void outer_block(const T* g, int64_t g_ld, const T* a, int64_t a_ld, int64_t len, T* gw, int64_t ldw) {
  constexpr int64_t NL = kLanes<T>;
  V<T> acc[JB][IB];
  for (int jb = 0; jb < JB; ++jb)
    for (int ib = 0; ib < IB; ++ib) acc[jb][ib] = V<T>{};
  for (int64_t k = 0; k < len; k += NL) {
    V<T> gv[JB], av[IB];
    for (int jb = 0; jb < JB; ++jb) gv[jb] = load(g + jb * g_ld + k);
    for (int ib = 0; ib < IB; ++ib) av[ib] = load(a + ib * a_ld + k);
    for (int jb = 0; jb < JB; ++jb)
      for (int ib = 0; ib < IB; ++ib) acc[jb][ib] += gv[jb] * av[ib];
  }
  for (int jb = 0; jb < JB; ++jb)
    for (int ib = 0; ib < IB; ++ib) gw[jb * ldw + ib] += hsum<T>(acc[jb][ib]);
}

template <typename T, int JB>
FI void outer_rows(const T* g, int64_t g_ld, const T* a, int64_t a_ld, int64_t cols, int64_t len, T* gw, int64_t ldw) {
  int64_t i = 0;
  for (; i + 2 <= cols; i += 2) outer_block<T, JB, 2>(g, g_ld, a + i * a_ld, a_ld, len, gw + i, ldw);
  for (; i < cols; ++i) outer_block<T, JB, 1>(g, g_ld, a + i * a_ld, a_ld, len, gw + i, ldw);
}

template <typename T>
void outer(const T* g, int64_t g_ld, int64_t rows, const T* a, int64_t a_ld, int64_t cols, int64_t len, T* gw,
           int64_t ldw) {
  int64_t j = 0;
  for (; j + 4 <= rows; j += 4) outer_rows<T, 4>(g + j * g_ld, g_ld, a, a_ld, cols, len, gw + j * ldw, ldw);
  for (; j < rows; ++j) outer_rows<T, 1>(g + j * g_ld, g_ld, a, a_ld, cols, len, gw + j * ldw, ldw);
}

// As outer, but into per-entry SIMD accumulators acc[(j * ldw + i) * kLanes ..] (no horizontal sum per tile:
// the weight gradient's sum over a task's tiles is reduced once at the end, see backward_impl).

template <typename T, int JB, int IB>
FI void outer_block_acc(const T* g, int64_t g_ld, const T* a, int64_t a_ld, int64_t len, T* acc_base, int64_t ldw) {
  constexpr int64_t NL = kLanes<T>;
  V<T> acc[JB][IB];
  for (int jb = 0; jb < JB; ++jb)
    for (int ib = 0; ib < IB; ++ib) acc[jb][ib] = load(acc_base + (jb * ldw + ib) * NL);
  for (int64_t k = 0; k < len; k += NL) {
    V<T> gv[JB], av[IB];
    for (int jb = 0; jb < JB; ++jb) gv[jb] = load(g + jb * g_ld + k);
    for (int ib = 0; ib < IB; ++ib) av[ib] = load(a + ib * a_ld + k);
    for (int jb = 0; jb < JB; ++jb)
      for (int ib = 0; ib < IB; ++ib) acc[jb][ib] += gv[jb] * av[ib];
  }
  for (int jb = 0; jb < JB; ++jb)
    for (int ib = 0; ib < IB; ++ib) store(acc_base + (jb * ldw + ib) * NL, acc[jb][ib]);
}

template <typename T, int JB>
FI void outer_acc_rows(const T* g, int64_t g_ld, const T* a, int64_t a_ld, int64_t cols, int64_t len, T* acc,
                       int64_t ldw) {
  constexpr int64_t NL = kLanes<T>;
  int64_t i = 0;
  for (; i + 2 <= cols; i += 2) outer_block_acc<T, JB, 2>(g, g_ld, a + i * a_ld, a_ld, len, acc + i * NL, ldw);
  for (; i < cols; ++i) outer_block_acc<T, JB, 1>(g, g_ld, a + i * a_ld, a_ld, len, acc + i * NL, ldw);
}

template <typename T>
void outer_acc(const T* g, int64_t g_ld, int64_t rows, const T* a, int64_t a_ld, int64_t cols, int64_t len, T* acc,
               int64_t ldw) {
  constexpr int64_t NL = kLanes<T>;
  int64_t j = 0;
  for (; j + 4 <= rows; j += 4) outer_acc_rows<T, 4>(g + j * g_ld, g_ld, a, a_ld, cols, len, acc + j * ldw * NL, ldw);
  for (; j < rows; ++j) outer_acc_rows<T, 1>(g + j * g_ld, g_ld, a, a_ld, cols, len, acc + j * ldw * NL, ldw);
}

template <typename T>
FI T row_sum(const T* g) {  // sum of kTile entries
  V<T> acc = V<T>{};
  for (int64_t k = 0; k < kTile; k += kLanes<T>) acc += load(g + k);
  return hsum<T>(acc);
}

// ---- the jet through the activation ----------------------------------------------------------------------
// One neuron: z[C][kTile] (pre-activation jet) -> a[C][kTile] (and phi' to d1_out if not null) by
// T'_c = phi' T_c, Q'_q = phi' Q_q + phi'' T_i T_j; a may alias z (each lane vector is read completely before it
// is written: second derivatives first, as they read the pre-activation tangents).
template <typename T, Activation A>
FI void act_jet_row(const Plan& P, const T* z, T* a, T* d1_out) {
  const int64_t nT = P.n_dirs;
  for (int64_t v = 0; v < kTile; v += kLanes<T>) {
    const V<T> zv = load(z + v);
    V<T> av, d1, d2;
    Act<T, A>::forward(zv, av, d1, d2);
    if (d1_out != nullptr) store(d1_out + v, d1);
    for (int64_t q = 0; q < P.n_pairs; ++q) {
      const V<T> ti = load(z + (1 + P.pair_i[q]) * kTile + v);
      const V<T> tj = load(z + (1 + P.pair_j[q]) * kTile + v);
      const V<T> qv = load(z + (1 + nT + q) * kTile + v);
      store(a + (1 + nT + q) * kTile + v, d1 * qv + d2 * (ti * tj));
    }
    for (int64_t c = 0; c < nT; ++c) store(a + (1 + c) * kTile + v, d1 * load(z + (1 + c) * kTile + v));
    store(a + v, av);
  }
}

// Reverse of act_jet_row for one neuron: from the pre-activation jet z, phi' (sd), phi'' and phi''' (d23[2][kTile],
// from act_higher_rows: computed once per tile and layer, shared by every cotangent of a batched backward) and the
// gradient ga wrt the post-activation jet, the gradient gz wrt the pre-activation jet (gz must not alias ga or z):
// gz_T_c = phi' gT_c + phi'' sum_q gQ_q T_other, gz_Q_q = phi' gQ_q,
// gz_z = phi' ga_z + phi'' (sum_c gT_c T_c + sum_q gQ_q Q_q) + phi''' sum_q gQ_q T_i T_j.
template <typename T>
FI void act_jet_row_backward(const Plan& P, const T* z, const T* sd, const T* d23, const T* ga, T* gz) {
  const int64_t nT = P.n_dirs;
  for (int64_t v = 0; v < kTile; v += kLanes<T>) {
    const V<T> d1 = load(sd + v);
    const V<T> d2 = load(d23 + v);
    const V<T> d3 = load(d23 + kTile + v);
    V<T> g1 = V<T>{};  // d loss / d phi'
    V<T> g2 = V<T>{};  // d loss / d phi''
    for (int64_t c = 0; c < nT; ++c) {
      const V<T> g = load(ga + (1 + c) * kTile + v);
      g1 += g * load(z + (1 + c) * kTile + v);
      store(gz + (1 + c) * kTile + v, d1 * g);
    }
    for (int64_t q = 0; q < P.n_pairs; ++q) {
      const int64_t ci = 1 + P.pair_i[q], cj = 1 + P.pair_j[q];
      const V<T> ti = load(z + ci * kTile + v);
      const V<T> tj = load(z + cj * kTile + v);
      const V<T> gq = load(ga + (1 + nT + q) * kTile + v);
      g1 += gq * load(z + (1 + nT + q) * kTile + v);
      g2 += gq * (ti * tj);
      store(gz + (1 + nT + q) * kTile + v, d1 * gq);
      const V<T> coef = d2 * gq;
      store(gz + ci * kTile + v, load(gz + ci * kTile + v) + coef * tj);
      store(gz + cj * kTile + v, load(gz + cj * kTile + v) + coef * ti);
    }
    store(gz + v, load(ga + v) * d1 + g1 * d2 + g2 * d3);
  }
}

// The activation jets of n neurons (rows of C * kTile) for the plan's activation; d1 may be null.
template <typename T, Activation A>
void act_rows(const Plan& P, const T* z, T* a, T* d1, int64_t n) {
  const int64_t CT = P.channels * kTile;
  for (int64_t i = 0; i < n; ++i) act_jet_row<T, A>(P, z + i * CT, a + i * CT, d1 ? d1 + i * kTile : nullptr);
}
template <typename T>
void act_jet_rows(const Plan& P, const T* z, T* a, T* d1, int64_t n) {
  switch (P.activation) {
    case kSin: return act_rows<T, kSin>(P, z, a, d1, n);
    case kSilu: return act_rows<T, kSilu>(P, z, a, d1, n);
    case kSoftplus: return act_rows<T, kSoftplus>(P, z, a, d1, n);
    default: return act_rows<T, kTanh>(P, z, a, d1, n);
  }
}

// phi'' and phi''' of n neurons into d23[i][2][kTile], from z and a (channel 0 of the pre- and post-activation jet
// rows) and phi' (d1[i][kTile]), for the plan's activation.
template <typename T, Activation A>
void higher_rows(const Plan& P, const T* z, const T* a, const T* d1, T* d23, int64_t n) {
  const int64_t CT = P.channels * kTile;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t v = 0; v < kTile; v += kLanes<T>) {
      V<T> d2, d3;
      Act<T, A>::higher(load(z + i * CT + v), load(a + i * CT + v), load(d1 + i * kTile + v), d2, d3);
      store(d23 + 2 * i * kTile + v, d2);
      store(d23 + (2 * i + 1) * kTile + v, d3);
    }
}
template <typename T>
void act_higher_rows(const Plan& P, const T* z, const T* a, const T* d1, T* d23, int64_t n) {
  switch (P.activation) {
    case kSin: return higher_rows<T, kSin>(P, z, a, d1, d23, n);
    case kSilu: return higher_rows<T, kSilu>(P, z, a, d1, d23, n);
    case kSoftplus: return higher_rows<T, kSoftplus>(P, z, a, d1, d23, n);
    default: return higher_rows<T, kTanh>(P, z, a, d1, d23, n);
  }
}

// The reverse of act_jet_rows for n neurons, with their phi'' and phi''' in d23 (act_higher_rows).
template <typename T>
void act_jet_rows_backward(const Plan& P, const T* z, const T* d1, const T* d23, const T* ga, T* gz, int64_t n) {
  const int64_t CT = P.channels * kTile;
  for (int64_t i = 0; i < n; ++i)
    act_jet_row_backward<T>(P, z + i * CT, d1 + i * kTile, d23 + 2 * i * kTile, ga + i * CT, gz + i * CT);
}

// ---- one tile ---------------------------------------------------------------------------------------------
template <typename T>
void load_tile(const Plan& P, const T* scale, const T* shift, const T* x, int64_t p0, int64_t np, T* xs) {
  const int64_t d = P.sizes[0];
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t p = 0; p < np; ++p) xs[i * kTile + p] = x[(p0 + p) * d + i] * scale[i] + shift[i];
    for (int64_t p = np; p < kTile; ++p) xs[i * kTile + p] = T(0);  // padding: finite, its gradients are zero
  }
}

// Forward through all layers: Z[k] receives layer k's pre-activation jet, A[k] (k < L - 1) its activation jet
// (A[k] may equal Z[k]: the activation then overwrites it, and Z[k + 1] must differ from Z[k]) and, if Sd is
// not null, Sd[k] the activation's derivative [width][kTile].
template <typename T>
void tile_forward(const Plan& P, const T* theta, const T* scale, const T* xs, T* const* Z, T* const* A,
                  T* const* Sd) {
  const int64_t CT = P.channels * kTile, d = P.sizes[0], n1 = P.sizes[1];
  const T* w0 = theta + P.w_off[0];
  const T* b0 = theta + P.b_off[0];
  T* z0 = Z[0];
  matmul(w0, d, 1, n1, d, xs, kTile, z0, CT, kTile);
  for (int64_t j = 0; j < n1; ++j) {
    T* row = z0 + j * CT;
    for (int64_t p = 0; p < kTile; ++p) row[p] += b0[j];
    for (int64_t c = 0; c < P.n_dirs; ++c) {
      const T t = w0[j * d + P.dirs[c]] * scale[P.dirs[c]];
      for (int64_t p = 0; p < kTile; ++p) row[(1 + c) * kTile + p] = t;
    }
    for (int64_t q = 0; q < P.n_pairs; ++q)
      for (int64_t p = 0; p < kTile; ++p) row[(1 + P.n_dirs + q) * kTile + p] = T(0);
  }
  for (int64_t k = 1; k < P.n_layers; ++k) {
    const int64_t n_in = P.sizes[k], n_out = P.sizes[k + 1];
    act_jet_rows(P, Z[k - 1], A[k - 1], Sd != nullptr ? Sd[k - 1] : nullptr, n_in);
    const T* w = theta + P.w_off[k];
    const T* b = theta + P.b_off[k];
    matmul(w, n_in, 1, n_out, n_in, A[k - 1], CT, Z[k], CT, CT);
    for (int64_t j = 0; j < n_out; ++j)
      for (int64_t p = 0; p < kTile; ++p) Z[k][j * CT + p] += b[j];
  }
}

// Internal channel of output field channel oc (value, requested first derivatives, second derivatives).
FI int64_t field_channel(const Plan& P, int64_t oc) {
  if (oc == 0) return 0;
  if (oc <= P.n_first) return 1 + P.first_out[oc - 1];
  return 1 + P.n_dirs + (oc - 1 - P.n_first);
}

// Pointers of one tile's forward state (the scaled points, every layer's jets and phi') laid out from base;
// returns the end. The same layout serves the backward's scratch (recompute) and the forward's tape (store).
template <typename T>
T* layout_state(const Plan& P, T* base, T*& xs, T** Z, T** A, T** Sd) {
  const int64_t CT = P.channels * kTile, L = P.n_layers;
  xs = base;
  T* next = xs + P.sizes[0] * kTile;
  for (int64_t k = 0; k < L; ++k) {
    Z[k] = next;
    next += P.sizes[k + 1] * CT;
  }
  for (int64_t k = 0; k + 1 < L; ++k) {
    A[k] = next;
    next += P.sizes[k + 1] * CT;
    Sd[k] = next;
    next += P.sizes[k + 1] * kTile;
  }
  return next;
}

template <typename T>
void forward_impl(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, int64_t n_points,
                  int64_t tile_begin, int64_t tile_end, T* fields, T* scratch, T* tape) {
  const int64_t CT = P.channels * kTile, d = P.sizes[0], L = P.n_layers, n_out = P.sizes[L];
  const int64_t tape_len = tape_elems(P);
  T* xs = scratch;
  T* Z[64];
  T* A[64];
  T* Sd[64];
  T* buf[2] = {xs + d * kTile, xs + d * kTile + P.max_width * CT};
  for (int64_t k = 0; k < L; ++k) Z[k] = buf[k & 1];  // activation in place, next layer into the other buffer
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t p0 = t * kTile, np = n_points - p0 < kTile ? n_points - p0 : kTile;
    if (tape != nullptr) {
      layout_state(P, tape + t * tape_len, xs, Z, A, Sd);  // keep every layer for the backward
      load_tile(P, scale, shift, x, p0, np, xs);
      tile_forward<T>(P, theta, scale, xs, Z, A, Sd);
    } else {
      load_tile(P, scale, shift, x, p0, np, xs);
      tile_forward<T>(P, theta, scale, xs, Z, Z, nullptr);
    }
    const T* out = Z[L - 1];
    for (int64_t oc = 0; oc < P.out_channels; ++oc) {
      const int64_t ch = field_channel(P, oc);
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t p = 0; p < np; ++p) fields[(oc * n_points + p0 + p) * n_out + o] = out[o * CT + ch * kTile + p];
    }
  }
}

// The backward of `streams` cotangents at once (a batched backward: one per loss term that reads the same
// evaluation): cotangent j is grad_fields + j * gf_stride, its gradient goes to grad_theta + j * gt_stride. Per
// tile the forward state is recomputed (or read) once, and per layer the transposed activation jet and phi'',
// phi''' are formed once; each stream then runs its own sweep of products with the same arithmetic as a
// single-stream call, so stream j's gradient equals a call with its cotangent alone bit for bit. grad_x (one
// stream only) may be null.
template <typename T>
void backward_impl(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, const T* grad_fields,
                   int64_t gf_stride, int64_t streams, int64_t n_points, int64_t tile_begin, int64_t tile_end,
                   T* grad_theta, int64_t gt_stride, T* grad_x, T* scratch, const T* tape) {
  const int64_t C = P.channels, CT = C * kTile, d = P.sizes[0], L = P.n_layers, n_out = P.sizes[L];
  const int64_t g_rows = backward_rows(P);
  const int64_t tape_len = tape_elems(P);
  T* xs;
  T* Z[64];
  T* A[64];
  T* Sd[64];
  T* G0 = layout_state(P, scratch, xs, Z, A, Sd);  // the state part of scratch is unused when a tape is given
  T* GA = G0 + streams * g_rows;                   // one gradient jet per stream, then the shared W^T G buffer
  T* d23 = GA + g_rows;                            // phi'' and phi''' of the layer being swept
  // SIMD accumulators of the hidden and output layers' weight gradients over this call's tiles, when they fit
  // in L2 next to the tile state (narrow nets: Burgers 9x20 needs 100 KiB). Wider nets accumulate each layer's
  // weight gradient in a row-padded copy instead, from the transposed activation jet `at` (a product over the
  // tile's C * kTile columns without horizontal sums; see grad_weight_elems). One set per stream.
  const bool use_acc = use_simd_acc(P, sizeof(T));
  T* at = d23 + 2 * P.max_width * kTile;
  T* acc0 = at + (use_acc ? 0 : padded_cols(P.max_width) * CT);
  const int64_t acc_len = weight_acc_elems(P, sizeof(T));
  std::memset(acc0, 0, sizeof(T) * acc_len * streams);
  int64_t gw_pad_off[64];
  for (int64_t k = 1, off = 0; k < L; off += P.sizes[k + 1] * padded_cols(P.sizes[k]), ++k) gw_pad_off[k] = off;
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t p0 = t * kTile, np = n_points - p0 < kTile ? n_points - p0 : kTile;
    if (tape != nullptr) {
      // The forward stored this tile's jets; the backward only reads them.
      layout_state(P, const_cast<T*>(tape) + t * tape_len, xs, Z, A, Sd);
    } else {
      // Recompute the tile's forward jets, keeping every layer (they stay in cache for the sweep back).
      load_tile(P, scale, shift, x, p0, np, xs);
      tile_forward<T>(P, theta, scale, xs, Z, A, Sd);
    }
    // Gradient wrt the output layer's jet: the requested fields' gradients, zero elsewhere and at padding.
    for (int64_t s = 0; s < streams; ++s) {
      T* G = G0 + s * g_rows;
      const T* gf = grad_fields + s * gf_stride;
      std::memset(G, 0, sizeof(T) * n_out * CT);
      for (int64_t oc = 0; oc < P.out_channels; ++oc) {
        const int64_t ch = field_channel(P, oc);
        for (int64_t o = 0; o < n_out; ++o)
          for (int64_t p = 0; p < np; ++p) G[o * CT + ch * kTile + p] = gf[(oc * n_points + p0 + p) * n_out + o];
      }
    }
    for (int64_t k = L - 1; k >= 1; --k) {
      const int64_t n_in = P.sizes[k], n_o = P.sizes[k + 1], ld = padded_cols(n_in);
      const T* w = theta + P.w_off[k];
      if (!use_acc) transpose_padded(A[k - 1], n_in, CT, at, ld);
      act_higher_rows(P, Z[k - 1], A[k - 1], Sd[k - 1], d23, n_in);
      for (int64_t s = 0; s < streams; ++s) {
        T* G = G0 + s * g_rows;
        T* acc = acc0 + s * acc_len;
        T* gb = grad_theta + s * gt_stride + P.b_off[k];
        if (use_acc) {
          outer_acc(G, CT, n_o, A[k - 1], CT, n_in, CT, acc + (P.w_off[k] - P.w_off[1]) * kLanes<T>, n_in);
        } else {
          matmul<T, true>(G, CT, 1, n_o, CT, at, ld, acc + gw_pad_off[k], ld, ld);  // gw += G A^T
        }
        for (int64_t j = 0; j < n_o; ++j) gb[j] += row_sum(G + j * CT);
        matmul(w, 1, n_in, n_in, n_o, G, CT, GA, CT, CT);  // GA = W^T G
        act_jet_rows_backward(P, Z[k - 1], Sd[k - 1], d23, GA, G, n_in);
      }
    }
    // First layer: value channel from the scaled points, tangents from W0[:, dirs[c]] * scale[dirs[c]].
    const int64_t n1 = P.sizes[1];
    const T* w0 = theta + P.w_off[0];
    for (int64_t s = 0; s < streams; ++s) {
      const T* G = G0 + s * g_rows;
      T* gt = grad_theta + s * gt_stride;
      outer(G, CT, n1, xs, kTile, d, kTile, gt + P.w_off[0], d);
      for (int64_t j = 0; j < n1; ++j) {
        gt[P.b_off[0] + j] += row_sum(G + j * CT);
        for (int64_t c = 0; c < P.n_dirs; ++c)
          gt[P.w_off[0] + j * d + P.dirs[c]] += scale[P.dirs[c]] * row_sum(G + j * CT + (1 + c) * kTile);
      }
    }
    if (grad_x != nullptr) {
      matmul(w0, 1, d, d, n1, G0, CT, GA, kTile, kTile);  // d loss / d (scaled x) = W0^T g_z (value channel)
      for (int64_t p = 0; p < np; ++p)
        for (int64_t i = 0; i < d; ++i) grad_x[(p0 + p) * d + i] = scale[i] * GA[i * kTile + p];
    }
  }
  // Horizontal sums of the weight-gradient accumulators, once per call. The layers' weights and biases
  // interleave in theta, so the accumulator of layer k's W sits at (w_off[k] - w_off[1]) lanes-strided.
  for (int64_t s = 0; s < streams; ++s) {
    const T* acc_s = acc0 + s * acc_len;
    T* gt = grad_theta + s * gt_stride;
    for (int64_t k = 1; use_acc && k < L; ++k) {
      const int64_t n = P.sizes[k + 1] * P.sizes[k];
      const T* acc = acc_s + (P.w_off[k] - P.w_off[1]) * kLanes<T>;
      T* gw = gt + P.w_off[k];
      for (int64_t e = 0; e < n; ++e) gw[e] += hsum<T>(load(acc + e * kLanes<T>));
    }
    for (int64_t k = 1; !use_acc && k < L; ++k) {  // drop the padding columns
      const int64_t n_in = P.sizes[k], ld = padded_cols(n_in);
      const T* acc = acc_s + gw_pad_off[k];
      T* gw = gt + P.w_off[k];
      for (int64_t j = 0; j < P.sizes[k + 1]; ++j)
        for (int64_t i = 0; i < n_in; ++i) gw[j * n_in + i] += acc[j * ld + i];
    }
  }
}

#undef FI
}  // namespace

void forward(const Plan& plan, const float* theta, const float* scale, const float* shift, const float* x,
             int64_t n_points, int64_t tile_begin, int64_t tile_end, float* fields, float* scratch, float* tape) {
  forward_impl(plan, theta, scale, shift, x, n_points, tile_begin, tile_end, fields, scratch, tape);
}
void forward(const Plan& plan, const double* theta, const double* scale, const double* shift, const double* x,
             int64_t n_points, int64_t tile_begin, int64_t tile_end, double* fields, double* scratch, double* tape) {
  forward_impl(plan, theta, scale, shift, x, n_points, tile_begin, tile_end, fields, scratch, tape);
}
#define FASTPINN_MLPJET_BACKWARD(T)                                                                                  \
  void backward(const Plan& plan, const T* theta, const T* scale, const T* shift, const T* x, const T* grad_fields,  \
                int64_t n_points, int64_t tile_begin, int64_t tile_end, T* grad_theta, T* grad_x, T* scratch,        \
                const T* tape) {                                                                                     \
    backward_impl(plan, theta, scale, shift, x, grad_fields, 0, 1, n_points, tile_begin, tile_end, grad_theta, 0,    \
                  grad_x, scratch, tape);                                                                            \
  }                                                                                                                  \
  void backward_batched(const Plan& plan, const T* theta, const T* scale, const T* shift, const T* x,                \
                        const T* grad_fields, int64_t grad_stride, int64_t streams, int64_t n_points,                \
                        int64_t tile_begin, int64_t tile_end, T* grad_theta, int64_t grad_theta_stride, T* scratch,  \
                        const T* tape) {                                                                             \
    backward_impl(plan, theta, scale, shift, x, grad_fields, grad_stride, streams, n_points, tile_begin, tile_end,   \
                  grad_theta, grad_theta_stride, static_cast<T*>(nullptr), scratch, tape);                           \
  }
FASTPINN_MLPJET_BACKWARD(float)
FASTPINN_MLPJET_BACKWARD(double)
#undef FASTPINN_MLPJET_BACKWARD

}  // namespace FASTPINN_MLPJET_NS
}  // namespace mlpjet
}  // namespace fastpinn
