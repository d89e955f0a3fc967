// Sign-matching attention kernel (see sign_match_kernel.h for the data layout).
//
// Compiled once per ISA level with -DSMA_ISA=<name> and that level's -m flags; everything except
// the kernels_<name>() accessor has internal linkage, and no standard-library template is used,
// so no code compiled for one level can be picked by the linker for another.
//
// Per query the work is:
//  1. match counts against every key, bit-sliced: the sign bits of 256 keys in one dimension form
//     one 256-bit plane; XNOR with the query's sign in that dimension gives a plane of 256
//     one-bit matches, and a carry-save adder tree sums the head_dim planes into a handful of
//     count planes (bit l of key j's count lives in plane l). This is XNOR + popcount done for
//     256 keys at once with plain bitwise vector ops (no popcount instruction needed, so the same
//     code is fast on AVX2, AVX-512 and baseline CPUs).
//  2. selection without sorting: the threshold t (the largest match count reached by at least K
//     valid keys) from bit-sliced comparisons of all keys against a window of five thresholds at
//     once, usually one sweep as nearby queries have similar thresholds; then one pass over 64-key
//     words takes every key above t and the lowest-index keys equal to t (ties to the lower index).
//  3. exact softmax attention over the selected keys (vectorized dot products, exp, weighted sum).
// Words go from vectors to scalar registers by lane extraction, never by reloading a just-stored
// vector: such loads stall on the wider store.
#include "sign_match_kernel.h"

#include <cstring>

#ifndef SMA_ISA
#error "compile with -DSMA_ISA=generic|avx2|avx512"
#endif

#define SMA_CAT2(a, b) a##b
#define SMA_CAT(a, b) SMA_CAT2(a, b)
#define SMA_STR2(a) #a
#define SMA_STR(a) SMA_STR2(a)

namespace onnx_approx {
namespace {

typedef uint64_t Plane __attribute__((vector_size(32)));
static_assert(sizeof(Plane) == kChunkWords * sizeof(uint64_t), "a plane covers one chunk of keys");

constexpr int kMaxCountBits = 16;  // head_dim <= 65535 (checked by the op)

inline uint32_t sign_bit(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits >> 31;
}

inline Plane broadcast(uint64_t w) { return Plane{w, w, w, w}; }

inline int popcount64(uint64_t w) { return __builtin_popcountll(w); }

// Number of bits needed to hold a count in [0, n].
inline int bit_width(int64_t n) {
  int bits = 1;
  while ((int64_t{1} << bits) <= n) ++bits;
  return bits;
}

// Carry-save adder: a + b + c = 2 * carry + sum, per bit.
inline void csa(Plane& carry, Plane& sum, Plane a, Plane b, Plane c) {
  const Plane u = a ^ b;
  carry = (a & b) | (u & c);
  sum = u ^ c;
}

// Bit-sliced match counts of one chunk of keys: count bit l of key j ends up in bit j of out[l]
// (4 + kHigh planes). Sixteen input planes at a time go through a fixed carry-save tree (ones,
// twos, fours, eights stay single planes, 15 CSAs per 16 inputs), the sixteens ripple into the high
// planes; the dim % 16 remaining inputs ripple in from the ones. All state stays in registers.
template <int kHigh>
void count_matches(const Plane* planes, const Plane* query_masks, int64_t dim, Plane* out) {
  const Plane zero = broadcast(0);
  Plane ones = zero, twos = zero, fours = zero, eights = zero;
  Plane high[kHigh > 0 ? kHigh : 1];
  for (int l = 0; l < kHigh; ++l) high[l] = zero;
  auto input = [&](int64_t d) { return planes[d] ^ query_masks[d]; };
  auto ripple_high = [&](Plane carry) {
    for (int l = 0; l < kHigh; ++l) {
      const Plane next = high[l] & carry;
      high[l] ^= carry;
      carry = next;
    }
  };
  int64_t d = 0;
  for (; d + 16 <= dim; d += 16) {
    Plane twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens;
    csa(twos_a, ones, ones, input(d + 0), input(d + 1));
    csa(twos_b, ones, ones, input(d + 2), input(d + 3));
    csa(fours_a, twos, twos, twos_a, twos_b);
    csa(twos_a, ones, ones, input(d + 4), input(d + 5));
    csa(twos_b, ones, ones, input(d + 6), input(d + 7));
    csa(fours_b, twos, twos, twos_a, twos_b);
    csa(eights_a, fours, fours, fours_a, fours_b);
    csa(twos_a, ones, ones, input(d + 8), input(d + 9));
    csa(twos_b, ones, ones, input(d + 10), input(d + 11));
    csa(fours_a, twos, twos, twos_a, twos_b);
    csa(twos_a, ones, ones, input(d + 12), input(d + 13));
    csa(twos_b, ones, ones, input(d + 14), input(d + 15));
    csa(fours_b, twos, twos, twos_a, twos_b);
    csa(eights_b, fours, fours, fours_a, fours_b);
    csa(sixteens, eights, eights, eights_a, eights_b);
    ripple_high(sixteens);
  }
  for (; d < dim; ++d) {
    Plane carry = input(d);
    Plane next = ones & carry;
    ones ^= carry;
    carry = next;
    next = twos & carry;
    twos ^= carry;
    carry = next;
    next = fours & carry;
    fours ^= carry;
    carry = next;
    next = eights & carry;
    eights ^= carry;
    ripple_high(next);
  }
  out[0] = ones;
  out[1] = twos;
  out[2] = fours;
  out[3] = eights;
  for (int l = 0; l < kHigh; ++l) out[4 + l] = high[l];
}

typedef void (*CountFunction)(const Plane*, const Plane*, int64_t, Plane*);

// The counter with just enough high planes for counts up to head_dim.
CountFunction count_function(int high) {
  static const CountFunction by_high[kMaxCountBits - 3] = {
      count_matches<0>, count_matches<1>, count_matches<2>, count_matches<3>, count_matches<4>,
      count_matches<5>, count_matches<6>, count_matches<7>, count_matches<8>, count_matches<9>,
      count_matches<10>, count_matches<11>, count_matches<12>};
  return by_high[high];
}

// Count planes are chunk-major: counts[(c * bits + l) * kChunkWords + w] holds count bit l of the keys
// of word w of chunk c.

// Bit-sliced "count >= t" for one word of keys, from the least significant count bit up.
inline uint64_t greater_equal(const uint64_t* counts, int bits, int64_t word, int64_t t) {
  const uint64_t* x = counts + (word / kChunkWords) * bits * kChunkWords + word % kChunkWords;
  uint64_t ge = ~uint64_t{0};
  for (int l = 0; l < bits; ++l) ge = ((t >> l) & 1) ? (x[l * kChunkWords] & ge) : (x[l * kChunkWords] | ge);
  // Counts never exceed head_dim < 2^bits, so a threshold with higher bits set is never reached.
  return (t >> bits) ? 0 : ge;
}

// Valid keys matching at least 4a, 4a + 1, ..., 4a + 4 times, in one sweep over all chunks: the count
// bits above the lowest two are compared with `a` once, from the top (greater / equal), and the
// lowest two bits finish each of the five thresholds. masks[c * kWindow + i] holds chunk c's keys for
// threshold 4a + i, n[i] their number. kBits > 0 fixes the number of count planes at compile time.
constexpr int kWindow = 5;

template <int kBits>
void threshold_window(const Plane* counts, const uint64_t* valid, int64_t chunks, int runtime_bits, int64_t a,
                      PlaneWords* masks, int64_t* n) {
  const int bits = kBits > 0 ? kBits : runtime_bits;
  for (int i = 0; i < kWindow; ++i) n[i] = 0;
  const bool reachable = (a >> (bits - 2)) == 0;  // else 4a is above every possible count
  Plane a_bits[kMaxCountBits];  // all-ones where `a` has a one, so the comparison needs no branch
  for (int l = 2; l < bits; ++l) a_bits[l] = broadcast(((a >> (l - 2)) & 1) ? ~uint64_t{0} : 0);
  for (int64_t c = 0; c < chunks; ++c) {
    const Plane* x = counts + c * bits;
    Plane greater = broadcast(0);
    Plane equal = broadcast(0);
    if (reachable) std::memcpy(&equal, valid + c * kChunkWords, sizeof(equal));
    for (int l = bits - 1; l >= 2; --l) {
      greater |= equal & x[l] & ~a_bits[l];  // a zero bit of `a` where the count has a one
      equal &= ~(x[l] ^ a_bits[l]);
    }
    const Plane m[kWindow] = {greater | equal, greater | (equal & (x[1] | x[0])), greater | (equal & x[1]),
                              greater | (equal & x[1] & x[0]), greater};
    for (int i = 0; i < kWindow; ++i) {
      std::memcpy(masks[c * kWindow + i].words, &m[i], sizeof(Plane));
      // Lanes straight from the register: reading back the stored plane would stall on the store.
      n[i] += popcount64(m[i][0]) + popcount64(m[i][1]) + popcount64(m[i][2]) + popcount64(m[i][3]);
    }
  }
}

// The lowest `n` set bits of `w` (n < popcount(w)).
inline uint64_t lowest_bits(uint64_t w, int64_t n) {
  uint64_t taken = 0;
  for (; n > 0; --n) {
    taken |= w & (~w + 1);
    w &= w - 1;
  }
  return taken;
}

// Appends the positions of the set bits of `w` (plus `base`) to out[n...]; writes up to 3 entries past
// the new end (the buffers have that slack), which keeps words with few bits free of branches.
inline int64_t append_indices(uint64_t w, int64_t base, int64_t* out, int64_t n) {
  const int64_t count = popcount64(w);
  int64_t* o = out + n;
  constexpr uint64_t kTop = uint64_t{1} << 63;  // keeps ctz defined once w runs out of bits
  do {
    o[0] = base + __builtin_ctzll(w | kTop);
    w &= w - 1;
    o[1] = base + __builtin_ctzll(w | kTop);
    w &= w - 1;
    o[2] = base + __builtin_ctzll(w | kTop);
    w &= w - 1;
    o[3] = base + __builtin_ctzll(w | kTop);
    w &= w - 1;
    o += 4;
  } while (w);
  return n + count;
}

// Eight floats; plain loops over a runtime head dimension are not vectorized reliably (GCC peels
// the reductions into scalar code), so the hot loops use GCC vector types explicitly.
typedef float Floats __attribute__((vector_size(32)));
typedef int32_t Ints __attribute__((vector_size(32)));
constexpr int64_t kLanes = 8;

inline Floats load(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void store(float* p, Floats v) { std::memcpy(p, &v, sizeof(v)); }

inline float horizontal_sum(Floats v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// The horizontal sums of eight vectors as one vector (a transpose-and-add tree, 7 adds, 14 shuffles).
inline Floats horizontal_sums(const Floats* v) {
  typedef int32_t Index __attribute__((vector_size(32)));
  Floats pairs[4], quads[2];
  for (int i = 0; i < 4; ++i) {  // [a0+a2, b0+b2, a1+a3, b1+b3 | same for lanes 4..7]
    pairs[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], Index{0, 8, 1, 9, 4, 12, 5, 13}) +
               __builtin_shuffle(v[2 * i], v[2 * i + 1], Index{2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 2; ++i) {  // [a, b, c, d partial sums | same for the upper half]
    quads[i] = __builtin_shuffle(pairs[2 * i], pairs[2 * i + 1], Index{0, 1, 8, 9, 4, 5, 12, 13}) +
               __builtin_shuffle(pairs[2 * i], pairs[2 * i + 1], Index{2, 3, 10, 11, 6, 7, 14, 15});
  }
  return __builtin_shuffle(quads[0], quads[1], Index{0, 1, 2, 3, 8, 9, 10, 11}) +
         __builtin_shuffle(quads[0], quads[1], Index{4, 5, 6, 7, 12, 13, 14, 15});
}

// exp(x) for x <= 0: 2^n * e^r with |r| <= ln2/2 and a degree-7 Taylor polynomial (relative error
// below 1e-8 before rounding). glibc's expf is not vectorized without -ffast-math.
inline Floats exp_nonpositive(Floats x) {
  const Floats floor_x = Floats{} - 87.0f;  // keeps 2^n a normal float; e^-87 is negligible next to e^0
  x = x < floor_x ? floor_x : x;
  const Floats round_magic = Floats{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const Floats n = (x * 1.44269504088896341f + round_magic) - round_magic;
  const Floats r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  Floats poly = Floats{} + 1.0f / 5040.0f;
  poly = poly * r + 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  const Ints exponent = (__builtin_convertvector(n, Ints) + 127) << 23;
  return poly * (Floats)exponent;  // a cast between same-size vector types reinterprets the bits
}

// Softmax-weighted sum of the selected value rows, written to `out`. Keys go in groups of kLanes:
// `selected` and `scores` have room for n rounded up to kLanes, and the padding lanes repeat a real
// key with weight 0, so no lane needs a branch. kDim > 0 (a multiple of kLanes) fixes the head
// dimension at compile time for the common sizes: query and output row stay in registers.
template <int kDim>
void attend_selected(const float* q, const float* k, const float* v, int64_t runtime_dim, float scale,
                     int64_t* selected, int64_t n, bool prefetch, Floats* scores, float* out) {
  static_assert(kDim % kLanes == 0, "fixed head dimensions are multiples of the vector width");
  constexpr int kVectors = kDim > 0 ? kDim / kLanes : 1;
  const int64_t dim = kDim > 0 ? kDim : runtime_dim;
  const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;
  for (int64_t s = n; s < padded; ++s) selected[s] = selected[0];
  if (prefetch) {  // rows scattered over more than the L2 cache holds: start all their loads now
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t d = 0; d < dim; d += 64 / sizeof(float)) {
        __builtin_prefetch(k + selected[s] * dim + d);
        __builtin_prefetch(v + selected[s] * dim + d);
      }
    }
  }
  Floats query[kVectors];
  if (kDim > 0) {
    for (int c = 0; c < kVectors; ++c) query[c] = load(q + c * kLanes);
  }
  const Floats lanes = Floats{0, 1, 2, 3, 4, 5, 6, 7};
  const Floats lowest = Floats{} - 3.4e38f;
  Floats max_scores = lowest;
  for (int64_t s = 0; s < padded; s += kLanes) {
    Floats group;
    if (kDim > 0) {  // one transpose-and-add instead of eight horizontal sums
      Floats dots[kLanes];
      for (int i = 0; i < kLanes; ++i) {
        const float* key = k + selected[s + i] * dim;
        dots[i] = query[0] * load(key);
        for (int c = 1; c < kVectors; ++c) dots[i] += query[c] * load(key + c * kLanes);
      }
      group = horizontal_sums(dots) * scale;
    } else {
      for (int i = 0; i < kLanes; ++i) {
        const float* key = k + selected[s + i] * dim;
        float dot = 0.0f;
        for (int64_t d = 0; d < dim; ++d) dot += q[d] * key[d];
        group[i] = dot * scale;
      }
    }
    scores[s / kLanes] = group;
    group = lanes + static_cast<float>(s) < static_cast<float>(n) ? group : lowest;
    max_scores = group > max_scores ? group : max_scores;
  }
  float max_score = max_scores[0];
  for (int i = 1; i < kLanes; ++i) max_score = max_scores[i] > max_score ? max_scores[i] : max_score;

  typedef int32_t Index __attribute__((vector_size(32)));
  Floats totals = Floats{};
  Floats acc[kVectors];
  for (int c = 0; c < kVectors; ++c) acc[c] = Floats{};
  if (kDim == 0) {
    for (int64_t d = 0; d < dim; ++d) out[d] = 0.0f;
  }
  for (int64_t s = 0; s < padded; s += kLanes) {
    Floats weights = exp_nonpositive(scores[s / kLanes] - max_score);
    weights = lanes + static_cast<float>(s) < static_cast<float>(n) ? weights : Floats{};
    totals += weights;
    for (int i = 0; i < kLanes; ++i) {
      const float* value = v + selected[s + i] * dim;
      if (kDim > 0) {
        const Floats weight = __builtin_shuffle(weights, Index{} + i);
        for (int c = 0; c < kVectors; ++c) acc[c] += weight * load(value + c * kLanes);
      } else {
        for (int64_t d = 0; d < dim; ++d) out[d] += weights[i] * value[d];
      }
    }
  }
  const float inv = 1.0f / horizontal_sum(totals);
  if (kDim > 0) {
    for (int c = 0; c < kVectors; ++c) store(out + c * kLanes, acc[c] * inv);
  } else {
    for (int64_t d = 0; d < dim; ++d) out[d] *= inv;
  }
}

typedef void (*AttendFunction)(const float*, const float*, const float*, int64_t, float, int64_t*, int64_t, bool,
                               Floats*, float*);

AttendFunction attend_function(int64_t dim) {
  return dim == 32 ? attend_selected<32> : dim == 64 ? attend_selected<64> : attend_selected<0>;
}

void pack_keys(const SignMatchProblem& p, size_t task) {
  const int64_t dim = p.head_dim;
  uint64_t* planes = p.key_planes[static_cast<int64_t>(task) * p.chunks * dim].words;
  const float* keys = p.k + static_cast<int64_t>(task) * p.k_len * dim;
  uint64_t* word = new uint64_t[dim];
  // One 64-key word per dimension at a time, built in `word` (vectorized over dimensions).
  for (int64_t first = 0; first < p.chunks * kChunkKeys; first += 64) {
    for (int64_t d = 0; d < dim; ++d) word[d] = 0;
    const int64_t n = p.k_len - first < 64 ? p.k_len - first : 64;
    for (int64_t j = 0; j < n; ++j) {
      const float* row = keys + (first + j) * dim;
      for (int64_t d = 0; d < dim; ++d) word[d] |= static_cast<uint64_t>(sign_bit(row[d])) << j;
    }
    uint64_t* chunk = planes + (first / kChunkKeys) * dim * kChunkWords + (first % kChunkKeys) / 64;
    for (int64_t d = 0; d < dim; ++d) chunk[d * kChunkWords] = word[d];
  }
  delete[] word;
}

// Scratch memory of one task, freed on every path out of attend().
struct Scratch {
  Plane* counts = nullptr;
  PlaneWords* window = nullptr;
  Plane* query_masks = nullptr;
  int64_t* selected = nullptr;
  Floats* scores = nullptr;
  ~Scratch() {
    delete[] counts;
    delete[] window;
    delete[] query_masks;
    delete[] selected;
    delete[] scores;
  }
};

// The queries of one task; kHigh >= 0 fixes the number of high count planes at compile time (head
// dimensions below 256), -1 takes `runtime_high`.
template <int kHigh>
void attend_queries(const SignMatchProblem& p, size_t task, int runtime_high) {
  const int64_t blocks = (p.q_len + p.query_block - 1) / p.query_block;
  const int64_t bh = static_cast<int64_t>(task) / blocks;
  const int64_t block = static_cast<int64_t>(task) % blocks;
  const int64_t b = bh / p.heads;
  const int64_t dim = p.head_dim;
  const int64_t first = block * p.query_block;
  const int64_t last = first + p.query_block < p.q_len ? first + p.query_block : p.q_len;

  const float* keys = p.k + bh * p.k_len * dim;
  const float* values = p.v + bh * p.k_len * dim;
  const Plane* key_planes = reinterpret_cast<const Plane*>(p.key_planes + bh * p.chunks * dim);
  const uint64_t* valid = p.key_valid + b * p.chunks * kChunkWords;
  const int64_t n_valid = p.valid_count[b];
  const int64_t wanted = p.top_k < n_valid ? p.top_k : n_valid;
  const int high = kHigh >= 0 ? kHigh : runtime_high;
  const int bits = 4 + high;  // count planes per chunk
  const CountFunction count = kHigh >= 0 ? count_matches<(kHigh >= 0 ? kHigh : 0)> : count_function(high);
  const AttendFunction attend_selected = attend_function(dim);
  const bool prefetch = p.k_len * dim * 2 * static_cast<int64_t>(sizeof(float)) > (int64_t{256} << 10);
  const int64_t words = p.chunks * kChunkWords;

  Scratch scratch;
  scratch.selected = new int64_t[wanted + kLanes];  // room for append_indices and attend_selected padding
  scratch.scores = new Floats[(wanted + kLanes - 1) / kLanes + 1];
  int64_t n_all = 0;  // when every valid key is selected, the selection is the same for all queries
  if (wanted == n_valid) {
    for (int64_t w = 0; w < words; ++w) n_all = append_indices(valid[w], w * 64, scratch.selected, n_all);
  } else {
    scratch.counts = new Plane[p.chunks * bits];
    scratch.window = new PlaneWords[p.chunks * kWindow];
    scratch.query_masks = new Plane[dim];
  }

  int64_t guess = -1;  // the previous query's threshold
  for (int64_t i = first; i < last; ++i) {
    const float* query = p.q + (bh * p.q_len + i) * dim;
    float* out = p.out + (bh * p.q_len + i) * dim;
    if (wanted == 0) {
      for (int64_t d = 0; d < dim; ++d) out[d] = 0.0f;
      continue;
    }
    if (wanted == n_valid) {
      attend_selected(query, keys, values, dim, p.scale, scratch.selected, n_all, prefetch, scratch.scores, out);
      continue;
    }

    // 1. Match counts of all keys, chunk by chunk.
    // All-ones where the query is non-negative: XOR with a key plane then sets the matching keys.
    for (int64_t d = 0; d < dim; ++d) scratch.query_masks[d] = broadcast(sign_bit(query[d]) ? 0 : ~uint64_t{0});
    for (int64_t c = 0; c < p.chunks; ++c) count(key_planes + c * dim, scratch.query_masks, dim, scratch.counts + c * bits);
    const uint64_t* counts = reinterpret_cast<const uint64_t*>(scratch.counts);

    // 2. Threshold: the largest t with at least `wanted` valid keys matching >= t times. Each sweep
    //    counts a window of five thresholds, first the one around the previous query's threshold
    //    (nearby queries have similar ones), then the one around the middle of the interval still open.
    int64_t lo = 0, hi = dim + 1, count_hi = 0;  // at_least(lo) >= wanted > at_least(hi) = count_hi
    int64_t base = (guess >= 0 ? guess : hi / 2) / 4;
    bool window_has_both = false;  // the last window's masks hold thresholds lo and hi
    while (hi - lo > 1) {
      int64_t n[kWindow];
      threshold_window<(kHigh >= 0 ? kHigh + 4 : 0)>(scratch.counts, valid, p.chunks, bits, base, scratch.window, n);
      for (int w = 0; w < kWindow; ++w) {
        const int64_t t = 4 * base + w;
        if (t <= lo) continue;
        if (t >= hi) break;
        if (n[w] >= wanted) {
          lo = t;
        } else {
          hi = t;
          count_hi = n[w];
          break;
        }
      }
      window_has_both = lo >= 4 * base && hi <= 4 * base + 4;
      if (hi - lo > 1) base = (lo + hi) / 2 / 4;
    }
    guess = lo;

    // Selection: every valid key above the threshold, and the lowest-index keys at it.
    int64_t ties = wanted - count_hi;
    int64_t n_selected = 0;
    for (int64_t c = 0; c < p.chunks; ++c) {
      const PlaneWords* masks = scratch.window + c * kWindow;
      for (int64_t w = 0; w < kChunkWords; ++w) {
        const int64_t word = c * kChunkWords + w;
        uint64_t above, at;
        if (window_has_both) {
          above = masks[hi - 4 * base].words[w];
          at = masks[lo - 4 * base].words[w] & ~above;
        } else {
          above = greater_equal(counts, bits, word, hi) & valid[word];
          at = greater_equal(counts, bits, word, lo) & ~above & valid[word];
        }
        if (ties > 0) {
          const int64_t n_at = popcount64(at);
          if (n_at <= ties) {
            above |= at;
            ties -= n_at;
          } else {
            above |= lowest_bits(at, ties);
            ties = 0;
          }
        }
        n_selected = append_indices(above, word * 64, scratch.selected, n_selected);
      }
    }

    // 3. Exact attention over the selected keys.
    attend_selected(query, keys, values, dim, p.scale, scratch.selected, n_selected, prefetch, scratch.scores, out);
  }
}

void attend(const SignMatchProblem& p, size_t task) {
  const int high = bit_width(p.head_dim) > 4 ? bit_width(p.head_dim) - 4 : 0;
  switch (high) {
    case 0: return attend_queries<0>(p, task, high);
    case 1: return attend_queries<1>(p, task, high);
    case 2: return attend_queries<2>(p, task, high);
    case 3: return attend_queries<3>(p, task, high);
    case 4: return attend_queries<4>(p, task, high);
    default: return attend_queries<-1>(p, task, high);
  }
}

const SignMatchKernels kKernels = {SMA_STR(SMA_ISA), pack_keys, attend};

}  // namespace

const SignMatchKernels& SMA_CAT(kernels_, SMA_ISA)() { return kKernels; }

}  // namespace onnx_approx
