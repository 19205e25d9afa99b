// dz/dkappa = -(dF/dkappa)(x; kappa) / q(x; 0, kappa) for the centred von Mises distribution, one pass per
// element, all arithmetic in double whatever the input dtype: the fused CPU path of
// vae_lab.distributions.von_mises_cdf.von_mises_dz_dconcentration (compiled on first use by
// vae_lab.distributions.kernels). The formulas are those of the eager float64 path there, term for term:
// _dtheta_series with the recurrences of _series_sums_by_horner below the switch kappa = 50, each element
// with the number of terms of its own concentration (_DTHETA_TERMS[torch.float64], _terms_up_to), and
// _dtheta_normal (Hill's corrected normal approximation, closed-form derivative) from 50 on. Only sin, cos
// and exp are computed differently (polynomials on vectors of lanes, sin(N y) by powers of e^{i y/2}): the
// results agree with the eager float64 code to about 1e-12 relative within 5 standard deviations. Beyond 5
// (tail_dz below), where both lose their relative accuracy, the quadrature of von_mises_tail.py (to about
// 1e-13 of the eager one). x must lie in [-pi, pi].

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

constexpr double kPi = 3.141592653589793;        // pi = kPi + kPiLo (von_mises_cdf._PI_SPLIT[float64])
constexpr double kPiLo = 1.2246467991473532e-16;
constexpr double kSwitch = 50.0;                 // bessel.series_switch(torch.float64)
constexpr double kMinKappa = 1e-12;              // 2/kappa^2 would overflow below about 1e-154
constexpr int kBuckets = 8;
// von_mises_cdf._DTHETA_TERMS[torch.float64]: bucket b holds kappa <= 2^(b - 1) (b < 7), up to 50 (b = 7)
constexpr int kTerms[kBuckets] = {10, 12, 15, 20, 27, 38, 50, 60};
constexpr int kMaxTerms = 60;

// 1/n for n = 0..kMaxTerms (the same doubles as 1.0 / n), so that the recurrences' steps leave the divider
// to their own divisions
struct Reciprocals {
  double v[kMaxTerms + 1];
  constexpr Reciprocals() : v() {
    for (int n = 1; n <= kMaxTerms; ++n) v[n] = 1.0 / n;
  }
};
constexpr Reciprocals kInv{};

// Asymptotic expansions for large kappa (Abramowitz & Stegun 9.7.1), the coefficients of
// vae_lab/distributions/bessel.py (_I0_ASYMPTOTIC, _DIFF_ASYMPTOTIC; float64 uses all 14):
//   sqrt(2 pi k) i0e(k) ~ sum_j kI0[j] / k^j,  sqrt(2 pi k) (i0e(k) - i1e(k)) ~ sum_j kDiff[j] / k^j.
constexpr int kAsymptotic = 14;
constexpr double kI0[kAsymptotic] = {
    1.0, 1.0 / 8, 9.0 / 128, 75.0 / 1024, 3675.0 / 32768, 59535.0 / 262144, 2401245.0 / 4194304,
    57972915.0 / 33554432, 13043905875.0 / 2147483648, 418854310875.0 / 17179869184,
    30241281245175.0 / 274877906944, 1212400457192925.0 / 2199023255552,
    213786613951685775.0 / 70368744177664, 10278202593831046875.0 / 562949953421312};
constexpr double kDiff[kAsymptotic] = {
    0.0, 1.0 / 2, 3.0 / 16, 45.0 / 256, 525.0 / 2048, 33075.0 / 65536, 654885.0 / 524288,
    31216185.0 / 8388608, 869593725.0 / 67108864, 221746399875.0 / 4294967296,
    7958231906625.0 / 34359738368, 635066906148675.0 / 549755813888,
    27885210515437275.0 / 4398046511104, 5344665348792144375.0 / 140737488355328};

// Elements run kLanes at a time as one vector of doubles (GCC vector extensions, compiled for AVX2 and for
// the baseline and picked at load time by target_clones): the recurrences are chains of dependent
// divisions, and independent lanes keep the CPU busy. sin, cos and exp are evaluated here too, as
// polynomials on the lanes (below). Every lane's arithmetic is its own (IEEE operations in the same order
// whatever the vector width, no FMA contraction), so results do not depend on how the elements are grouped,
// on the thread count or on the CPU.
constexpr int kVec = 4;       // lanes per vector
constexpr int kLanes = 2 * kVec;  // lanes per call: two vectors, interleaved
typedef double vd __attribute__((vector_size(8 * kVec)));
typedef long long vl __attribute__((vector_size(8 * kVec)));

#define VAE_LAB_CLONES __attribute__((target_clones("avx2", "default")))
#define VAE_LAB_INLINE static inline __attribute__((always_inline))

VAE_LAB_INLINE vd load(const double* p) {
  vd v;
  std::memcpy(&v, p, sizeof(vd));
  return v;
}

VAE_LAB_INLINE vd vsqrt(vd a) {
  for (int j = 0; j < kVec; ++j) a[j] = std::sqrt(a[j]);
  return a;
}

// sin(a) for |a| <= pi/2, Taylor series to degree 23 (truncation below 1e-20 relative, about 1 ulp in all).
VAE_LAB_INLINE vd vsin(vd a) {
  const vd a2 = a * a;
  vd s = a2 * (-1.0 / 25852016738884976640000.0) + 1.0 / 51090942171709440000.0;  // -1/23!, 1/21!
  s = s * a2 - 1.0 / 121645100408832000.0;  // 1/19!
  s = s * a2 + 1.0 / 355687428096000.0;
  s = s * a2 - 1.0 / 1307674368000.0;
  s = s * a2 + 1.0 / 6227020800.0;
  s = s * a2 - 1.0 / 39916800.0;
  s = s * a2 + 1.0 / 362880.0;
  s = s * a2 - 1.0 / 5040.0;
  s = s * a2 + 1.0 / 120.0;
  s = s * a2 - 1.0 / 6.0;
  return a + a * (a2 * s);
}

// exp(a): a = m ln 2 + r (Cody-Waite, |r| <= ln(2)/2), Taylor series of e^r to degree 13, times 2^m built
// from its bits; lanes outside [-700, 700] (or NaN) are evaluated by std::exp.
VAE_LAB_INLINE vd vexp(vd a) {
  constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  const vd shifted = a * 1.4426950408889634 + kShifter;
  const vd m = shifted - kShifter;
  const vd r = (a - m * kLn2Hi) - m * kLn2Lo;
  vd e = r * (1.0 / 6227020800.0) + 1.0 / 479001600.0;
  e = e * r + 1.0 / 39916800.0;
  e = e * r + 1.0 / 3628800.0;
  e = e * r + 1.0 / 362880.0;
  e = e * r + 1.0 / 40320.0;
  e = e * r + 1.0 / 5040.0;
  e = e * r + 1.0 / 720.0;
  e = e * r + 1.0 / 120.0;
  e = e * r + 1.0 / 24.0;
  e = e * r + 1.0 / 6.0;
  e = e * r + 0.5;
  e = e * r + 1.0;
  e = e * r + 1.0;
  vl bits;
  std::memcpy(&bits, &shifted, sizeof(vd));
  bits = (bits - 0x4338000000000000LL + 1023) << 52;  // the integer m sits in the low bits of shifted
  vd scale;
  std::memcpy(&scale, &bits, sizeof(vd));
  vd out = e * scale;
  for (int j = 0; j < kVec; ++j) {
    if (!(std::fabs(a[j]) <= 700.0)) out[j] = std::exp(a[j]);
  }
  return out;
}

VAE_LAB_INLINE vd vselect(vl mask, vd a, vd b) { return mask ? a : b; }

// von_mises_cdf._dtheta_normal, kappa >= 50.
VAE_LAB_INLINE vd normal_vec(const vd x, const vd k) {
  const vd half = vsin(x * 0.5);
  const vd sk = vsqrt(k);
  const vd y = 1.0 / k;
  vd s0 = y * kI0[kAsymptotic - 1] + kI0[kAsymptotic - 2];  // bessel.horner
  vd sd = y * kDiff[kAsymptotic - 1] + kDiff[kAsymptotic - 2];
  for (int c = kAsymptotic - 3; c >= 0; --c) {
    s0 = s0 * y + kI0[c];
    sd = sd * y + kDiff[c];
  }
  const vd one_minus_a = sd / s0;
  const vd z = sk / s0 * half * 2.0;
  const vd z2 = z * z;
  const vd cc = 24.0 * k;
  const vd d3 = cc - z2 - 53.0;                          // c - 56 - z^2 + 3
  const vd p_over_d3 = ((z2 + 1.75) * z2 + 83.5) / d3;  // (z^4 + 7z^2/4 + 167/2) / d3
  const vd den = (cc - 2.0 * z2 - 16.0) * (1.0 / 3.0) - p_over_d3;
  const vd inv_den = 1.0 / den;
  const vd zr = z * inv_den;
  const vd zr2 = zr * zr;
  const vd t = zr2 * z;  // z^3 / den^2
  // -d den/dz = 4 z / 3 + (4 z^3 + 7 z / 2 + 2 z P / d3) / d3 ; d den/dc = 1/3 + P / d3^2
  const vd neg_dden_dz = (z2 * 4.0 + 3.5 + 2.0 * p_over_d3) * z / d3 + z * (4.0 / 3.0);
  const vd dden_dc = p_over_d3 / d3 + 1.0 / 3.0;
  const vd two_t_over_den = t * inv_den * 2.0;  // 2 z^3 / den^3
  // dxi/dz = 1 - 3 z^2 / den^2 + (2 z^3 / den^3) d den/dz ; dxi/dc = (2 z^3 / den^3) d den/dc
  const vd dxi_dz = zr2 * -3.0 + 1.0 - two_t_over_den * neg_dden_dz;
  const vd dxi_dk = dxi_dz * z * one_minus_a + 24.0 * two_t_over_den * dden_dc;
  const vd xi = z - t;
  const vd log_ratio = half * half * k * 2.0 - 0.5 * xi * xi;
  return -(dxi_dk * vexp(log_ratio) * (s0 / sk));
}

VAE_LAB_CLONES
void normal_lanes(const double* xs, const double* ks, double* out) {
  for (int g = 0; g < kLanes; g += kVec) {
    const vd res = normal_vec(load(xs + g), load(ks + g));
    std::memcpy(out + g, &res, sizeof(vd));
  }
}

// von_mises_cdf._dtheta_series with the recurrences of _series_sums_by_horner, kappa < 50, n_terms terms,
// on one vector of lanes: set up, step n (n_terms down to 1), finish.
struct Series {
  vd k, sigma, sgn_sigma, reflected, half_sq, lam, c1, c2, t, d, r, e, v, dv, p;
};

VAE_LAB_INLINE void series_setup(Series& s, const vd x, vd k, int n_terms) {
  const vd zero = vd{};
  const vd one = zero + 1.0;
  k = vselect(k < kMinKappa, zero + kMinKappa, k);
  vd ax = x;
  for (int j = 0; j < kVec; ++j) ax[j] = std::fabs(x[j]);
  const vl refl = ax > 0.5 * kPi;
  s.k = k;
  s.reflected = vselect(refl, one, zero);
  s.sigma = vselect(refl, -one, one);
  s.sgn_sigma = vselect(x > 0.0, one, vselect(x < 0.0, -one, x)) * s.sigma;  // torch.sign(x) sigma
  const vd y = vselect(refl, (kPi - ax) + kPiLo, ax);  // pi - |x| is exact (Sterbenz's lemma)
  s.c1 = s.sigma / k * 2.0;                           // 2 sigma / kappa
  s.c2 = s.c1 / k;                                    // 2 sigma / kappa^2
  const vd half = vsin(y * 0.5);
  s.half_sq = half * half;
  s.lam = s.half_sq * -4.0;
  // sin(N y) and sin(N y) - sin((N + 1) y) = -2 sin(y/2) cos((N + 1/2) y) from w^(2N + 1), w = e^{i y/2}
  // = cos(y/2) + i sin(y/2) (y/2 <= pi/4, so cos(y/2) = sqrt(1 - sin^2(y/2))), by repeated squaring:
  // sin(N y) = Im(w^(2N + 1) conj(w)). Keeps the relative accuracy of sin(N y) as y -> 0.
  const vd hc = vsqrt(1.0 - s.half_sq);
  vd pc = hc, ps = half, bc = hc, bs = half;
  for (int m = n_terms; m > 0; m >>= 1) {  // 2N + 1 = 1 + 2 N: the bits of N, base w^2, w^4, ...
    const vd sq_c = (bc - bs) * (bc + bs);
    bs = 2.0 * bc * bs;
    bc = sq_c;
    if (m & 1) {
      const vd nc = pc * bc - ps * bs;
      ps = pc * bs + ps * bc;
      pc = nc;
    }
  }
  s.t = ps * hc - pc * half;  // sin(N y)
  s.d = pc * half * -2.0;     // sin(N y) - sin((N + 1) y)
  s.r = s.e = s.v = s.dv = s.p = zero;
}

VAE_LAB_INLINE void series_step(Series& s, int n) {
  const double sign = (n % 2 == 0) ? 1.0 : -1.0;
  const double sign_n = sign * n;
  const double inv_n = kInv.v[n];
  const double fn = n;
  s.r = 1.0 / (s.r + fn * s.c1);
  const vd e_hat = (s.e + sign_n * s.c2) * s.r;
  const vd w = s.v + s.t * inv_n;  // W_n
  const vd dv = s.dv + sign * (e_hat * w);
  const vd p = (n % 2) ? s.p + 1.0 : s.p + s.sigma;
  s.e = e_hat * s.r;
  s.v = w * s.r;
  s.dv = dv * s.r;
  s.p = p * s.r;
  if (n > 1) {  // Reinsch: d_{n-1} = d_n - 4 sin^2(y/2) t_n, t_{n-1} = t_n + d_{n-1}
    s.d = s.d + s.lam * s.t;
    s.t = s.t + s.d;
  }
}

VAE_LAB_INLINE vd series_finish(const Series& s) {
  // 1/q(x) = 2 pi i0e(k) exp(2 k sin^2(x/2)), i0e = 1/(1 + 2p), sin^2(x/2) = sin^2(y/2) or 1 - sin^2(y/2)
  const vd expo = vexp((s.reflected + s.half_sq * s.sigma) * s.k * 2.0);
  const vd inv_i0e = s.p * s.sigma * 2.0 + 1.0;
  return s.dv * s.sgn_sigma * expo / inv_i0e * -2.0;
}

VAE_LAB_CLONES
void series_lanes(const double* xs, const double* ks, int n_terms, double* out) {
  Series a, b;
  series_setup(a, load(xs), load(ks), n_terms);
  series_setup(b, load(xs + kVec), load(ks + kVec), n_terms);
  for (int n = n_terms; n >= 1; --n) {
    series_step(a, n);
    series_step(b, n);
  }
  const vd ra = series_finish(a), rb = series_finish(b);
  std::memcpy(out, &ra, sizeof(vd));
  std::memcpy(out + kVec, &rb, sizeof(vd));
}

// The series bucket of a concentration below the switch: von_mises_cdf._terms_up_to(k, torch.float64) is
// kTerms[series_bucket(k)].
inline int series_bucket(double k) {
  double edge = 0.5;
  for (int b = 0; b < kBuckets - 1; ++b, edge *= 2.0) {
    if (k <= edge) return b;
  }
  return kBuckets - 1;
}

// Far in the tails (beyond kTailDeviation standard deviations, 4 k sin^2(x/2) > kTailDeviation^2) the series
// and the normal approximation lose their relative accuracy; there the derivative is the one-signed integral
//   dz/dk = sign(x) int_{|x|}^{pi} (cos t - A(k)) exp(k (cos t - cos x)) dt,
// by 16-point Gauss-Legendre quadrature on panels over which the exponent falls by 2, to a fall of 50, then
// one panel to pi: the eager code of vae_lab/distributions/von_mises_tail.py, in scalar double (such elements
// are about 6 in 10 million samples; each costs about 400 sines and exponentials).
constexpr double kTailDeviation = 5.0;  // von_mises_tail.DEVIATION
constexpr int kTailPanels = 25;         // von_mises_tail._PANELS
constexpr double kTailFall = 2.0;       // von_mises_tail._FALL
// numpy.polynomial.legendre.leggauss(16): the positive nodes and their weights
constexpr double kGaussNodes[8] = {0.09501250983763744, 0.2816035507792589, 0.45801677765722737,
                                   0.6178762444026438,  0.755404408355003,  0.8656312023878318,
                                   0.9445750230732326,  0.9894009349916499};
constexpr double kGaussWeights[8] = {0.18945061045506864, 0.18260341504492364, 0.16915651939500265,
                                     0.1495959888165767,  0.12462897125553407, 0.0951585116824926,
                                     0.062253523938647456, 0.027152459411754176};

inline bool in_tail(double x, double k) {
  constexpr double limit = kTailDeviation * kTailDeviation;
  if (!(k * x * x > limit)) return false;  // 4 sin^2(x/2) <= x^2: most elements stop here
  const double s = std::sin(0.5 * x);
  return 4.0 * k * s * s > limit;
}

// 1 - I1(k)/I0(k) (bessel.one_minus_bessel_ratio): the asymptotic expansions from the switch on, else
// I1/I0 by the backward recurrence R_n = 1/(2n/k + R_{n+1}) from n = 150
inline double one_minus_bessel_ratio(double k) {
  if (k >= kSwitch) {
    const double y = 1.0 / k;
    double s0 = 0.0, s1 = 0.0;
    for (int j = kAsymptotic - 1; j >= 0; --j) {
      s0 = s0 * y + kI0[j];
      s1 = s1 * y + kDiff[j];
    }
    return s1 / s0;
  }
  double r = 0.0;
  for (int n = 150; n >= 1; --n) r = 1.0 / (2.0 * n / k + r);
  return 1.0 - r;
}

double tail_dz(double x, double k) {
  const double ax = std::fabs(x);
  const double hs = std::sin(0.5 * ax), hc = std::cos(0.5 * ax);
  const double two_sin_sq = 2.0 * hs * hs;  // 1 - cos x
  const double c = 1.0 - two_sin_sq;
  const double total = 2.0 * hc * hc * k;  // the exponent's fall from x to pi
  const double c_minus_a = one_minus_bessel_ratio(k) - two_sin_sq;
  // panels as offsets t - |x| from |x|, so that t - |x| keeps its relative accuracy
  double prev = 0.0, sum = 0.0;
  for (int j = 1; j <= kTailPanels + 1; ++j) {
    double edge = j <= kTailPanels
                      ? std::acos(std::clamp(c - std::min(j * kTailFall, total) / k, -1.0, 1.0)) - ax
                      : (kPi - ax) + kPiLo;
    edge = std::max(edge, prev);
    const double half = 0.5 * (edge - prev), mid = prev + half;
    double panel = 0.0;
    for (int i = 0; i < 8; ++i) {
      for (const double offset : {mid - half * kGaussNodes[i], mid + half * kGaussNodes[i]}) {
        const double ho = 0.5 * offset;
        const double drop = -2.0 * std::sin(ho + ax) * std::sin(ho);  // cos t - cos x
        panel += kGaussWeights[i] * (drop + c_minus_a) * std::exp(drop * k);
      }
    }
    sum += half * panel;
    prev = edge;
  }
  return x < 0.0 ? -sum : sum;
}

// Elements [begin, end) in chunks of kChunk, each element sorted into its series bucket (so that it runs
// with the number of terms of its own concentration) or, from the switch on, the normal approximation's.
constexpr int64_t kChunk = 1024;

template <typename scalar_t>
void dz_range(const scalar_t* xp, const scalar_t* kp, scalar_t* out, int64_t begin, int64_t end) {
  int32_t members[kBuckets + 1][kChunk];
  int counts[kBuckets + 1];
  alignas(32) double xs[kLanes], ks[kLanes], res[kLanes];
  for (int64_t lo = begin; lo < end; lo += kChunk) {
    const int64_t hi = std::min(lo + kChunk, end);
    std::fill(counts, counts + kBuckets + 1, 0);
    for (int64_t i = lo; i < hi; ++i) {
      const double k = static_cast<double>(kp[i]);
      if (in_tail(static_cast<double>(xp[i]), k)) {
        out[i] = static_cast<scalar_t>(tail_dz(static_cast<double>(xp[i]), k));
        continue;
      }
      const int b = k < kSwitch ? series_bucket(k) : kBuckets;  // NaN: the normal approximation, NaN
      members[b][counts[b]++] = static_cast<int32_t>(i - lo);
    }
    for (int b = 0; b <= kBuckets; ++b) {
      for (int m = 0; m < counts[b]; m += kLanes) {
        const int used = std::min(kLanes, counts[b] - m);
        for (int j = 0; j < kLanes; ++j) {  // spare lanes repeat the last element
          const int64_t i = lo + members[b][m + std::min(j, used - 1)];
          xs[j] = static_cast<double>(xp[i]);
          ks[j] = static_cast<double>(kp[i]);
        }
        if (b < kBuckets) {
          series_lanes(xs, ks, kTerms[b], res);
        } else {
          normal_lanes(xs, ks, res);
        }
        for (int j = 0; j < used; ++j) out[lo + members[b][m + j]] = static_cast<scalar_t>(res[j]);
      }
    }
  }
}

}  // namespace

torch::Tensor dz_dconcentration(torch::Tensor x, torch::Tensor kappa) {
  TORCH_CHECK(x.device().is_cpu() && kappa.device().is_cpu(), "dz_dconcentration: CPU tensors only");
  TORCH_CHECK(x.scalar_type() == kappa.scalar_type(), "dz_dconcentration: x and kappa differ in dtype");
  TORCH_CHECK(x.sizes() == kappa.sizes(), "dz_dconcentration: x and kappa differ in shape");
  TORCH_CHECK(x.is_contiguous() && kappa.is_contiguous(), "dz_dconcentration: contiguous tensors only");
  auto out = torch::empty_like(x);
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dz_dconcentration", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* kp = kappa.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) { dz_range(xp, kp, op, begin, end); });
  });
  return out;
}
