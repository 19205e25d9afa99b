// The Best & Fisher (1979) von Mises sampler, one pass per chunk of elements, all arithmetic in double
// whatever the input dtype: the fused CPU path of vae_lab.distributions.best_fisher (sample_centred and
// accepted_noise). Compiled after von_mises_grad.cpp in the same translation unit (load_inline joins the
// sources): it uses that file's lane vectors (vd, vl, kVec), vsin, vexp, vsqrt, vselect and VAE_LAB_CLONES.
//
// The formulas are those of the eager code, term for term: the cancellation-free envelope constants of
// _proposal_constants (2w, c_num, from min(kappa, 1e15)), the proposal D = 1 + 2w sin^2 a with
// a = pi |u1| / 2, the exact test u2 <= c e^{1 - c}, c = c_num / D, and the accepted sample
// |x| = 2 atan2(beta cos a, sin a), beta = (1 - rho) / (1 + rho) = m / (d + 2 kappa) (proposal_path's
// form: cos a / sqrt(D) = sin(|x| / 2)), with cos a = sin(pi (1 - |u1|) / 2) exact near a = pi / 2, where
// the samples of large kappa live. |x| is clamped to the output dtype's largest number below pi
// before rounding, so float32 samples never round to float32(pi) > pi.
//
// Random numbers: Philox4x32-10 (Salmon et al., SC 2011), a counter-based generator. Proposal j of
// element i (its index in the flattened input) reads the counter (i mod 2^32, i / 2^32, j, 0) under a
// 64-bit key that the caller draws from torch's generator: every element owns its own stream, so the
// samples depend on neither the chunking nor the thread count nor the CPU, and float32 results are the
// float64 results (of the same concentrations) rounded.

#include <immintrin.h>

#include <atomic>

namespace {

typedef unsigned long long vu __attribute__((vector_size(8 * kVec)));

constexpr double kHalfPi = 1.5707963267948966;
constexpr double kQuarterPi = 0.7853981633974483;
constexpr double kTanPiOver8 = 0.41421356237309503;
constexpr double kSamplerKappaMax = 1e15;  // best_fisher._SAMPLER_KAPPA_MAX
constexpr int64_t kSampleChunk = 512;      // elements per chunk: its buffers stay in the L1 cache
constexpr int kMaxRounds = 1000;           // the acceptance rate is at least 0.65: never reached

// Philox4x32-10 of the counters (idx[t] mod 2^32, idx[t] / 2^32, c2, c3), t < count (a multiple of kVec),
// under the key (k0, k1); the output words (x0, x1, x2, x3) go to w01[t] = x0 2^32 + x1 and
// w23[t] = x2 2^32 + x3. Two builds with the same results, the AVX2 one picked at load time where the CPU
// has AVX2: its 32 x 32 -> 64 products take one vpmuludq per four, where GCC's vector extensions multiply
// 64-bit lanes by shifts and adds.
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;
using PhiloxFn = void (*)(const uint64_t*, int, uint32_t, uint32_t, uint32_t, uint32_t, uint64_t*, uint64_t*);

void philox_generic(const uint64_t* idx, int count, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                    uint64_t* w01, uint64_t* w23) {
  const vu lo = vu{} + 0xffffffffULL;
  for (int t = 0; t < count; t += kVec) {
    vu i;
    std::memcpy(&i, idx + t, sizeof(vu));
    vu a0 = i & lo, a1 = i >> 32, a2 = vu{} + c2, a3 = vu{} + c3;
    uint32_t ka = k0, kb = k1;
    for (int r = 0; r < kPhiloxRounds; ++r, ka += kPhiloxW0, kb += kPhiloxW1) {
      const vu p0 = a0 * kPhiloxM0, p1 = a2 * kPhiloxM1;
      a0 = (p1 >> 32) ^ a1 ^ ka;
      a1 = p1 & lo;
      a2 = (p0 >> 32) ^ a3 ^ kb;
      a3 = p0 & lo;
    }
    const vu x01 = (a0 << 32) | a1, x23 = (a2 << 32) | a3;
    std::memcpy(w01 + t, &x01, sizeof(vu));
    std::memcpy(w23 + t, &x23, sizeof(vu));
  }
}

__attribute__((target("avx2"))) void philox_avx2(const uint64_t* idx, int count, uint32_t c2, uint32_t c3,
                                                 uint32_t k0, uint32_t k1, uint64_t* w01, uint64_t* w23) {
  // _mm256_mul_epu32 reads the low 32 bits of each lane: the high halves may hold anything until the end
  const __m256i lo = _mm256_set1_epi64x(0xffffffffLL);
  const __m256i m0 = _mm256_set1_epi64x(kPhiloxM0), m1 = _mm256_set1_epi64x(kPhiloxM1);
  __m256i key0[kPhiloxRounds], key1[kPhiloxRounds];
  for (int r = 0; r < kPhiloxRounds; ++r, k0 += kPhiloxW0, k1 += kPhiloxW1) {
    key0[r] = _mm256_set1_epi64x(k0);
    key1[r] = _mm256_set1_epi64x(k1);
  }
  for (int t = 0; t < count; t += 4) {
    const __m256i i = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + t));
    __m256i a0 = i, a1 = _mm256_srli_epi64(i, 32);
    __m256i a2 = _mm256_set1_epi64x(c2), a3 = _mm256_set1_epi64x(c3);
    for (int r = 0; r < kPhiloxRounds; ++r) {
      const __m256i p0 = _mm256_mul_epu32(a0, m0), p1 = _mm256_mul_epu32(a2, m1);
      a0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), a1), key0[r]);
      a1 = p1;
      a2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), a3), key1[r]);
      a3 = p0;
    }
    const __m256i x01 = _mm256_or_si256(_mm256_slli_epi64(a0, 32), _mm256_and_si256(a1, lo));
    const __m256i x23 = _mm256_or_si256(_mm256_slli_epi64(a2, 32), _mm256_and_si256(a3, lo));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w01 + t), x01);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w23 + t), x23);
  }
}

PhiloxFn pick_philox() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") ? philox_avx2 : philox_generic;
}
const PhiloxFn philox_block = pick_philox();

// A proposal's uniforms from its Philox words: u1 in [-1, 1) and u2 in [0, 1), 52 random bits each
// (2^e + bits 2^(e - 52) is exact).
VAE_LAB_INLINE void uniforms(const uint64_t* w01, const uint64_t* w23, vd& u1, vd& u2) {
  vu b1, b2;
  std::memcpy(&b1, w01, sizeof(vu));
  std::memcpy(&b2, w23, sizeof(vu));
  b1 = (b1 >> 12) | 0x4000000000000000ULL;  // [2, 4)
  b2 = (b2 >> 12) | 0x3FF0000000000000ULL;  // [1, 2)
  std::memcpy(&u1, &b1, sizeof(vd));
  std::memcpy(&u2, &b2, sizeof(vd));
  u1 -= 3.0;
  u2 -= 1.0;
}

VAE_LAB_INLINE vd vabs(vd a) { return vselect(a < 0.0, -a, a); }

// atan2(num, den) for num, den >= 0, not both 0, with q = lo / hi (the smaller over the larger): atan(q)
// = pi/4 + atan((q - 1)/(q + 1)) above tan(pi/8), then one halving, atan(z) = 2 atan(z / (1 + sqrt(1 +
// z^2))), leave |z| <= tan(pi/16) = 0.199, where the Taylor series to degree 23 is exact to 1e-18
// relative; all three quotients are taken at once.
VAE_LAB_INLINE vd vatan2_positive(vd num, vd den) {
  const vl swap = num > den;
  const vd lo = vselect(swap, den, num), hi = vselect(swap, num, den);
  const vl big = lo > hi * kTanPiOver8;
  const vd zn = vselect(big, lo - hi, lo), zd = vselect(big, lo + hi, hi);
  const vd z = zn / (vsqrt(zn * zn + zd * zd) + zd);
  const vd z2 = z * z;
  vd s = z2 * (-1.0 / 23) + 1.0 / 21;
  for (int n = 9; n >= 0; --n) s = s * z2 + ((n % 2) ? -1.0 : 1.0) / (2 * n + 1);
  const vd t = vselect(big, vd{} + kQuarterPi, vd{}) + 2.0 * (z * s);
  return vselect(swap, kHalfPi - t, t);
}

// Per-element constants: 2w, c_num and beta, with one reciprocal for the three quotients.
VAE_LAB_INLINE void constants(vd k, vd& two_w, vd& c_num, vd& beta) {
  k = vselect(k > kSamplerKappaMax, vd{} + kSamplerKappaMax, k);
  const vd h = vsqrt(k * k * 4.0 + 1.0);
  const vd tau = h + 1.0;
  const vd sq = vsqrt(tau * 2.0);
  const vd d = tau + sq;
  const vd m = 1.0 / (h + 2.0 * k) + sq + 1.0;
  const vd m2 = m * m;
  const vd e = d + 2.0 * k;
  const vd inv = 1.0 / (m2 * d * e);  // at most 32 kappa^3 = 3e46
  two_w = k * d * 8.0 * (d * e * inv);
  c_num = m2 * 0.25 * (m2 * e * inv) + 2.0 * k;
  beta = m * (m2 * d * inv);
}

// Whether u2 <= c e^{1 - c}, c = c_num / (1 + 2w sin^2 a), a = pi |u1| / 2; s = sin a.
VAE_LAB_INLINE vl accept(vd u1, vd u2, vd two_w, vd c_num, vd& s) {
  s = vsin(vabs(u1) * kHalfPi);
  const vd c = c_num / (s * s * two_w + 1.0);
  return c * vexp(1.0 - c) >= u2;
}

// The centred sample of accepted noise u1 (sin_a = sin a), |x| clamped to top.
VAE_LAB_INLINE vd sample_of(vd u1, vd sin_a, vd beta, double top) {
  const vd cos_a = vsin((1.0 - vabs(u1)) * kHalfPi);
  vd x = 2.0 * vatan2_positive(beta * cos_a, sin_a);
  x = vselect(x > top, vd{} + top, x);
  return vselect(u1 < 0.0, -x, x);
}

struct Chunk {
  alignas(32) double two_w[kSampleChunk], c_num[kSampleChunk], beta[kSampleChunk];
  alignas(32) double u[kSampleChunk], sin_a[kSampleChunk];  // of the accepted proposal
  alignas(32) uint64_t idx[kSampleChunk], w01[kSampleChunk], w23[kSampleChunk];
  int32_t todo[kSampleChunk];
};

// Elements [lo, hi) (hi - lo <= kSampleChunk, a multiple of kVec but at the end): round 0 for all, then
// rounds for the rejected ones; writes the accepted noise (noise) or the centred sample. Concentrations
// that are NaN or negative give NaN.
VAE_LAB_CLONES
void sample_chunk(const double* kappa, int64_t lo, int64_t hi, uint32_t k0, uint32_t k1, bool noise,
                  double top, double* out) {
  Chunk c;
  const int n = static_cast<int>(hi - lo), padded = (n + kVec - 1) / kVec * kVec;
  for (int b = 0; b < padded; ++b) c.idx[b] = static_cast<uint64_t>(lo + b);
  philox_block(c.idx, padded, 0, 0, k0, k1, c.w01, c.w23);
  int todo = 0;
  for (int b = 0; b < n; b += kVec) {  // kappa holds kVec spare slots at its end
    const vd k = load(kappa + b);
    vd two_w, c_num, beta, u1, u2, sin_a;
    constants(k, two_w, c_num, beta);
    uniforms(c.w01 + b, c.w23 + b, u1, u2);
    const vl ok = accept(u1, u2, two_w, c_num, sin_a) | ~(k >= 0.0);
    u1 = vselect(k >= 0.0, u1, vd{} + NAN);
    std::memcpy(c.two_w + b, &two_w, sizeof(vd));
    std::memcpy(c.c_num + b, &c_num, sizeof(vd));
    std::memcpy(c.beta + b, &beta, sizeof(vd));
    std::memcpy(c.u + b, &u1, sizeof(vd));
    std::memcpy(c.sin_a + b, &sin_a, sizeof(vd));
    for (int j = 0; j < kVec && b + j < n; ++j) {  // branch-free: a third of the proposals may fail
      c.todo[todo] = b + j;
      todo += ok[j] == 0;
    }
  }
  for (uint32_t round = 1; todo > 0; ++round) {
    if (round == kMaxRounds) {
      for (int t = 0; t < todo; ++t) c.u[c.todo[t]] = NAN;
      break;
    }
    const int todo_padded = (todo + kVec - 1) / kVec * kVec;
    for (int t = 0; t < todo_padded; ++t) c.idx[t] = static_cast<uint64_t>(lo + c.todo[std::min(t, todo - 1)]);
    philox_block(c.idx, todo_padded, round, 0, k0, k1, c.w01, c.w23);
    int left = 0;
    for (int t = 0; t < todo; t += kVec) {
      vd two_w, c_num, u1, u2, sin_a;
      for (int j = 0; j < kVec; ++j) {
        const int b = c.todo[std::min(t + j, todo - 1)];  // spare lanes: the last
        two_w[j] = c.two_w[b];
        c_num[j] = c.c_num[b];
      }
      uniforms(c.w01 + t, c.w23 + t, u1, u2);
      const vl ok = accept(u1, u2, two_w, c_num, sin_a);
      for (int j = 0; j < kVec && t + j < todo; ++j) {
        const int b = c.todo[t + j];
        c.u[b] = u1[j];  // if rejected, overwritten in a later round
        c.sin_a[b] = sin_a[j];
        c.todo[left] = b;     // left <= t + j: not read again in this round
        left += ok[j] == 0;
      }
    }
    todo = left;
  }
  for (int b = 0; b < n; b += kVec) {
    const vd u1 = load(c.u + b);
    const vd res = noise ? u1 : sample_of(u1, load(c.sin_a + b), load(c.beta + b), top);
    std::memcpy(out + b, &res, sizeof(vd));
  }
}

template <typename scalar_t>
void sample_range(const scalar_t* kp, scalar_t* op, int64_t begin, int64_t end, uint32_t k0, uint32_t k1,
                  bool noise, double top) {
  alignas(32) double kappa[kSampleChunk + kVec], out[kSampleChunk + kVec];
  for (int64_t lo = begin; lo < end; lo += kSampleChunk) {
    const int64_t hi = std::min(lo + kSampleChunk, end);
    const int n = static_cast<int>(hi - lo);
    for (int b = 0; b < n; ++b) kappa[b] = static_cast<double>(kp[lo + b]);
    for (int b = n; b < n + kVec; ++b) kappa[b] = kappa[n - 1];
    sample_chunk(kappa, lo, hi, k0, k1, noise, top, out);
    for (int b = 0; b < n; ++b) op[lo + b] = static_cast<scalar_t>(out[b]);
  }
}

}  // namespace

// One Best-Fisher draw per element of a contiguous CPU float32/float64 tensor of concentrations, under the
// Philox key (key0, key1): the centred sample, |x| at most top (angles.largest_below_pi of the dtype), or
// with noise the accepted signed noise u1 in [-1, 1).
torch::Tensor best_fisher(torch::Tensor kappa, int64_t key0, int64_t key1, bool noise, double top) {
  TORCH_CHECK(kappa.device().is_cpu() && kappa.is_contiguous(), "best_fisher: a contiguous CPU tensor only");
  auto out = torch::empty_like(kappa);
  const int64_t n = kappa.numel();
  const uint32_t k0 = static_cast<uint32_t>(key0), k1 = static_cast<uint32_t>(key1);
  AT_DISPATCH_FLOATING_TYPES(kappa.scalar_type(), "best_fisher", [&] {
    const scalar_t* kp = kappa.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, kSampleChunk, [&](int64_t begin, int64_t end) {
      sample_range(kp, op, begin, end, k0, k1, noise, top);
    });
  });
  return out;
}

// Philox4x32-10 of counters (n, 4) under one key, by the AVX2 build (where the CPU has AVX2) or the
// portable one, for the known-answer test: int64 tensors holding uint32 words.
torch::Tensor philox4x32(torch::Tensor counters, int64_t key0, int64_t key1, bool portable) {
  TORCH_CHECK(counters.dim() == 2 && counters.size(1) == 4 && counters.scalar_type() == torch::kInt64,
              "philox4x32: an (n, 4) int64 tensor");
  auto in = counters.contiguous();
  auto out = torch::empty_like(in);
  const int64_t* ip = in.data_ptr<int64_t>();
  int64_t* op = out.data_ptr<int64_t>();
  const PhiloxFn fn = portable ? philox_generic : philox_block;
  for (int64_t r = 0; r < in.size(0); ++r) {
    const uint64_t* w = reinterpret_cast<const uint64_t*>(ip + 4 * r);
    uint64_t idx[kVec], w01[kVec], w23[kVec];
    std::fill(idx, idx + kVec, (w[0] & 0xffffffffULL) | (w[1] << 32));
    fn(idx, kVec, static_cast<uint32_t>(w[2]), static_cast<uint32_t>(w[3]), static_cast<uint32_t>(key0),
       static_cast<uint32_t>(key1), w01, w23);
    const uint64_t words[4] = {w01[0] >> 32, w01[0] & 0xffffffffULL, w23[0] >> 32, w23[0] & 0xffffffffULL};
    for (int j = 0; j < 4; ++j) op[4 * r + j] = static_cast<int64_t>(words[j]);
  }
  return out;
}

// How many threads at::parallel_for splits n elements among at this grain (torch's intra-op threads): 1
// in a build without OpenMP, where every call runs on the calling thread. For the test that the kernels
// above run in parallel.
int64_t threads_used(int64_t n, int64_t grain) {
  std::atomic<uint64_t> seen{0};
  at::parallel_for(0, n, grain, [&](int64_t, int64_t) {
    seen.fetch_or(uint64_t{1} << std::min<int64_t>(at::get_thread_num(), 63));
  });
  return __builtin_popcountll(seen.load());
}
