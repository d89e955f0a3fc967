// Sign-matching attention kernel (see sign_match_kernel.h for the interface).
//
// Compiled once per ISA level with -DSMA_ISA=<name> and that level's -m flags; everything except
// the kernels_<name>() accessor has internal linkage, and no standard-library template is used,
// so no code compiled for one level can be picked by the linker for another.
//
// Key signs are packed as nibbles: the sign bits of four consecutive dimensions of one key form a
// number 0..15 stored in one byte, and 32 keys' bytes of the same four dimensions form one 32-byte
// vector. Per block of queries (one parallel task) the work is:
//  1. per query, the match counts of all keys as bytes: for each four dimensions, a 16-entry table
//     maps a key nibble to the number of its bits equal to the query's (XNOR + popcount in one byte
//     shuffle on SSSE3/AVX2; a few shifts and masks elsewhere), and the tables' values add up per
//     key. Counts start at 1 for valid keys and at -128 for invalid ones, so an invalid key never
//     reaches a threshold >= 1. A few queries share each tile of keys while its signs are in L1.
//     With AVX-512 BITALG (the avx512icl build) a byte holds eight dimensions of one key and a vector
//     64 keys instead: XOR with the query's byte and a byte popcount count the mismatches.
//  2. the threshold t (the largest count reached by at least K valid keys) by counting, not
//     sorting: the counting loop also counts the keys at or above a few thresholds around the
//     previous query's t, which nearby queries mostly share; when t lies outside, passes over the
//     stored counts narrow it down. Then one pass takes every key above t and the lowest-index
//     keys equal to t (ties to the lower index): 64 keys per compare mask with AVX-512, their
//     positions appended by one byte compression with VBMI2 (avx512icl).
//  3. exact softmax attention of the block's queries over their selected keys: all scores, then all
//     softmax weights, then all weighted sums of value rows (vectorized, with a polynomial exp).
// Head dimensions above kMaxByteDim (counts would overflow a byte) count and select on a scalar path.
#include "sign_match_kernel.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#ifndef SMA_ISA
#error "compile with -DSMA_ISA=generic|avx2|avx512"
#endif

#define SMA_CAT2(a, b) a##b
#define SMA_CAT(a, b) SMA_CAT2(a, b)
#define SMA_STR2(a) #a
#define SMA_STR(a) SMA_STR2(a)

namespace onnx_approx {
namespace {

// The constants below were tuned by measurement on an AMD EPYC (Zen 3) with AVX2.
constexpr int64_t kGroupKeys = 32;     // keys per byte vector
constexpr int64_t kTileGroups = 32;    // groups of keys counted for one query before the next
constexpr int64_t kQueryTile = 4;      // queries counted together against each tile of keys
constexpr int kWindow = 4;             // thresholds counted per pass over stored counts
constexpr int64_t kDenseBits = 2;      // selected keys per 64 from which append_dense pays
constexpr int64_t kMaxByteDim = 124;   // 1 + matches (padded to 4 dimensions) stays <= 127
constexpr int64_t kFlushGroups = 248;  // byte tallies are summed before they can overflow (< 256)

typedef int8_t Bytes __attribute__((vector_size(32)));
typedef uint16_t Shorts __attribute__((vector_size(32)));

inline Bytes load_bytes(const void* p) {
  Bytes v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void store_bytes(void* p, Bytes v) { std::memcpy(p, &v, sizeof(v)); }

inline Bytes splat(int64_t x) { return Bytes{} + static_cast<int8_t>(x); }

inline uint32_t sign_bit(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits >> 31;
}

inline int popcount64(uint64_t w) { return __builtin_popcountll(w); }

// Sign bits of `dim` floats into words[0 .. ceil(dim / 64)): bit d % 64 of word d / 64.
inline void sign_words(const float* row, int64_t dim, uint64_t* words) {
  for (int64_t w = 0; w < (dim + 63) / 64; ++w) words[w] = 0;
  int64_t d = 0;
#if defined(__AVX__)
  for (; d + 8 <= dim; d += 8) {
    words[d / 64] |= static_cast<uint64_t>(_mm256_movemask_ps(_mm256_loadu_ps(row + d))) << (d % 64);
  }
#elif defined(__SSE2__)
  for (; d + 4 <= dim; d += 4) {
    words[d / 64] |= static_cast<uint64_t>(_mm_movemask_ps(_mm_loadu_ps(row + d))) << (d % 64);
  }
#endif
  for (; d < dim; ++d) words[d / 64] |= static_cast<uint64_t>(sign_bit(row[d])) << (d % 64);
}

// Bit i = top bit of byte i.
inline uint32_t byte_mask(Bytes v) {
#if defined(__AVX2__)
  return static_cast<uint32_t>(_mm256_movemask_epi8(reinterpret_cast<__m256i>(v)));
#elif defined(__SSE2__)
  __m128i half[2];
  std::memcpy(half, &v, sizeof(v));
  return static_cast<uint32_t>(_mm_movemask_epi8(half[0])) |
         static_cast<uint32_t>(_mm_movemask_epi8(half[1])) << 16;
#else
  uint32_t mask = 0;
  for (int i = 0; i < 32; ++i) mask |= static_cast<uint32_t>(v[i] < 0) << i;
  return mask;
#endif
}

// Sum of the 32 bytes read as unsigned.
inline int64_t byte_sum(Bytes v) {
#if defined(__AVX2__)
  typedef int64_t Longs __attribute__((vector_size(32)));
  const Longs sums = reinterpret_cast<Longs>(_mm256_sad_epu8(reinterpret_cast<__m256i>(v), __m256i{}));
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
#elif defined(__SSE2__)
  __m128i half[2];
  std::memcpy(half, &v, sizeof(v));
  int64_t sums[2];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(sums), _mm_add_epi64(_mm_sad_epu8(half[0], __m128i{}),
                                                                     _mm_sad_epu8(half[1], __m128i{})));
  return sums[0] + sums[1];
#else
  int64_t sum = 0;
  for (int i = 0; i < 32; ++i) sum += static_cast<uint8_t>(v[i]);
  return sum;
#endif
}

// Match counts of one nibble (four dimensions) of 32 keys against the query's nibble, prepared by
// query_nibble: with a byte shuffle, a table of the 16 possible key nibbles' counts; without, the
// query nibble's complement, so that a set bit of (key ^ it) is a matching dimension.
#if defined(__SSSE3__)
struct NibbleTables {
  int8_t table[16][32];
};

constexpr NibbleTables make_nibble_tables() {
  NibbleTables t{};
  for (int q = 0; q < 16; ++q) {
    for (int i = 0; i < 32; ++i) {
      const int same = ~(q ^ (i % 16)) & 15;
      t.table[q][i] = static_cast<int8_t>((same & 1) + ((same >> 1) & 1) + ((same >> 2) & 1) + ((same >> 3) & 1));
    }
  }
  return t;
}

constexpr NibbleTables kNibbleTables = make_nibble_tables();

inline Bytes query_nibble(unsigned nibble) { return load_bytes(kNibbleTables.table[nibble]); }

inline Bytes nibble_matches(Bytes query, Bytes keys) {
#if defined(__AVX2__)
  const __m256i table = reinterpret_cast<__m256i>(query);
  return reinterpret_cast<Bytes>(_mm256_shuffle_epi8(table, reinterpret_cast<__m256i>(keys)));
#else
  __m128i q[2], k[2];
  std::memcpy(q, &query, sizeof(q));
  std::memcpy(k, &keys, sizeof(k));
  q[0] = _mm_shuffle_epi8(q[0], k[0]);
  q[1] = _mm_shuffle_epi8(q[1], k[1]);
  Bytes out;
  std::memcpy(&out, q, sizeof(out));
  return out;
#endif
}
#else
inline Bytes query_nibble(unsigned nibble) { return splat(~nibble & 15); }

inline Bytes nibble_matches(Bytes query, Bytes keys) {
  Bytes x = keys ^ query;  // bytes below 16: shifting them as 16-bit lanes only moves in bits the masks drop
  x -= reinterpret_cast<Bytes>(reinterpret_cast<Shorts>(x) >> 1) & 0x55;
  return (x & 0x33) + (reinterpret_cast<Bytes>(reinterpret_cast<Shorts>(x) >> 2) & 0x33);
}
#endif

// A query's sign code: what the counting loop combines with one vector of key codes.
#if defined(__AVX512BITALG__)
// With a byte popcount (AVX512-BITALG), a key code holds eight dimensions' sign bits and a vector 64
// keys: XOR with the query's code and a popcount give 64 keys' mismatches in two instructions, where
// the nibble tables take a shuffle and an add per four dimensions of 32 keys.
constexpr int64_t kCodeKeys = 64;
constexpr int64_t kCodeDims = 8;
typedef int8_t Code __attribute__((vector_size(64)));
inline Code query_code(unsigned bits) { return Code{} + static_cast<int8_t>(bits); }
#else
constexpr int64_t kCodeKeys = kGroupKeys;
constexpr int64_t kCodeDims = 4;
typedef Bytes Code;
inline Code query_code(unsigned bits) { return query_nibble(bits); }
#endif

// Code n of a row's sign words: the sign bits of dimensions kCodeDims * n and on.
inline unsigned code_of(const uint64_t* words, int64_t n) {
  const int64_t bit = n * kCodeDims;
  return static_cast<unsigned>(words[bit / 64] >> (bit % 64)) & ((1u << kCodeDims) - 1);
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

// ---------------------------------------------------------------------------------------------
// Exact attention over the selected keys.

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
  Floats pairs[4], quads[2];
  for (int i = 0; i < 4; ++i) {  // [a0+a2, b0+b2, a1+a3, b1+b3 | same for lanes 4..7]
    pairs[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], Ints{0, 8, 1, 9, 4, 12, 5, 13}) +
               __builtin_shuffle(v[2 * i], v[2 * i + 1], Ints{2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 2; ++i) {  // [a, b, c, d partial sums | same for the upper half]
    quads[i] = __builtin_shuffle(pairs[2 * i], pairs[2 * i + 1], Ints{0, 1, 8, 9, 4, 5, 12, 13}) +
               __builtin_shuffle(pairs[2 * i], pairs[2 * i + 1], Ints{2, 3, 10, 11, 6, 7, 14, 15});
  }
  return __builtin_shuffle(quads[0], quads[1], Ints{0, 1, 2, 3, 8, 9, 10, 11}) +
         __builtin_shuffle(quads[0], quads[1], Ints{4, 5, 6, 7, 12, 13, 14, 15});
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
  return poly * reinterpret_cast<Floats>(exponent);
}

inline float horizontal_max(Floats v) {
  v = v > __builtin_shuffle(v, Ints{4, 5, 6, 7, 0, 1, 2, 3}) ? v : __builtin_shuffle(v, Ints{4, 5, 6, 7, 0, 1, 2, 3});
  v = v > __builtin_shuffle(v, Ints{2, 3, 0, 1, 6, 7, 4, 5}) ? v : __builtin_shuffle(v, Ints{2, 3, 0, 1, 6, 7, 4, 5});
  v = v > __builtin_shuffle(v, Ints{1, 0, 3, 2, 5, 4, 7, 6}) ? v : __builtin_shuffle(v, Ints{1, 0, 3, 2, 5, 4, 7, 6});
  return v[0];
}

// Where a block of queries reads and writes: its first query and output rows (consecutive rows of
// `dim` floats), the key and value rows of its (batch, head) pair, and its selections: query i
// attends to the `n` ascending key indices at selected + i * stride (stride 0: one list for all).
struct QueryBlock {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int64_t dim, nq;
  float scale;
  const int32_t* selected;
  int64_t stride, n;
};

// Scores of the selected keys: scores + i * padded(n) gets query i's scale * q.k. kDim > 0 (a
// multiple of kLanes) fixes the head dimension: the query row stays in registers.
template <int kDim>
void block_scores(const QueryBlock& b, float* scores) {
  constexpr int kVectors = kDim > 0 ? kDim / kLanes : 1;
  const int64_t dim = kDim > 0 ? kDim : b.dim;
  const int64_t padded = (b.n + kLanes - 1) / kLanes * kLanes;
  for (int64_t i = 0; i < b.nq; ++i) {
    const int32_t* selected = b.selected + i * b.stride;
    const float* q = b.q + i * dim;
    float* s = scores + i * padded;
    int64_t c = 0;
    Floats query[kVectors];
    if (kDim > 0) {
      for (int v = 0; v < kVectors; ++v) query[v] = load(q + v * kLanes);
      for (; c + kLanes <= b.n; c += kLanes) {  // one transpose-and-add for eight keys
        Floats dots[kLanes];
        for (int l = 0; l < kLanes; ++l) {
          const float* key = b.k + static_cast<int64_t>(selected[c + l]) * dim;
          dots[l] = query[0] * load(key);
          for (int v = 1; v < kVectors; ++v) dots[l] += query[v] * load(key + v * kLanes);
        }
        store(s + c, horizontal_sums(dots) * b.scale);
      }
    }
    for (; c < b.n; ++c) {
      const float* key = b.k + static_cast<int64_t>(selected[c]) * dim;
      if (kDim > 0) {
        Floats dot = query[0] * load(key);
        for (int v = 1; v < kVectors; ++v) dot += query[v] * load(key + v * kLanes);
        s[c] = horizontal_sum(dot) * b.scale;
      } else {
        float dot = 0.0f;
        for (int64_t d = 0; d < dim; ++d) dot += q[d] * key[d];
        s[c] = dot * b.scale;
      }
    }
  }
}

// Scores to softmax weights, in place (the padding lanes get weight 0).
void block_softmax(int64_t nq, int64_t n, float* scores) {
  const int64_t padded = (n + kLanes - 1) / kLanes * kLanes;
  const Floats lanes = Floats{0, 1, 2, 3, 4, 5, 6, 7};
  const Floats lowest = Floats{} - 3.4e38f;
  for (int64_t i = 0; i < nq; ++i) {
    float* s = scores + i * padded;
    Floats max_scores = lowest;
    for (int64_t c = 0; c < padded; c += kLanes) {
      const Floats x = lanes + static_cast<float>(c) < static_cast<float>(n) ? load(s + c) : lowest;
      max_scores = x > max_scores ? x : max_scores;
    }
    const Floats max_score = Floats{} + horizontal_max(max_scores);
    Floats totals = Floats{};
    for (int64_t c = 0; c < padded; c += kLanes) {
      Floats weights = exp_nonpositive(load(s + c) - max_score);
      weights = lanes + static_cast<float>(c) < static_cast<float>(n) ? weights : Floats{};
      totals += weights;
      store(s + c, weights);
    }
    const Floats inv = Floats{} + 1.0f / horizontal_sum(totals);
    for (int64_t c = 0; c < padded; c += kLanes) store(s + c, load(s + c) * inv);
  }
}

// Output rows: the weighted sums of the selected value rows.
template <int kDim>
void block_sums(const QueryBlock& b, const float* weights) {
  constexpr int kVectors = kDim > 0 ? kDim / kLanes : 1;
  // Two accumulators per output vector (even and odd keys) halve the chain of dependent adds where
  // registers allow.
  constexpr int kSets = kVectors <= 4 ? 2 : 1;
  const int64_t dim = kDim > 0 ? kDim : b.dim;
  const int64_t padded = (b.n + kLanes - 1) / kLanes * kLanes;
  for (int64_t i = 0; i < b.nq; ++i) {
    const int32_t* selected = b.selected + i * b.stride;
    const float* w = weights + i * padded;
    float* out = b.out + i * dim;
    if (kDim > 0) {
      Floats acc[kSets][kVectors];
      for (int a = 0; a < kSets; ++a) {
        for (int v = 0; v < kVectors; ++v) acc[a][v] = Floats{};
      }
      int64_t c = 0;
      for (; c + kSets <= b.n; c += kSets) {
        for (int a = 0; a < kSets; ++a) {
          const float* value = b.v + static_cast<int64_t>(selected[c + a]) * dim;
          const Floats weight = {w[c + a], w[c + a], w[c + a], w[c + a], w[c + a], w[c + a], w[c + a], w[c + a]};
          for (int v = 0; v < kVectors; ++v) acc[a][v] += weight * load(value + v * kLanes);
        }
      }
      for (; c < b.n; ++c) {
        const float* value = b.v + static_cast<int64_t>(selected[c]) * dim;
        const Floats weight = {w[c], w[c], w[c], w[c], w[c], w[c], w[c], w[c]};
        for (int v = 0; v < kVectors; ++v) acc[0][v] += weight * load(value + v * kLanes);
      }
      for (int v = 0; v < kVectors; ++v) {
        Floats sum = acc[0][v];
        for (int a = 1; a < kSets; ++a) sum += acc[a][v];
        store(out + v * kLanes, sum);
      }
    } else {
      for (int64_t d = 0; d < dim; ++d) out[d] = 0.0f;
      for (int64_t c = 0; c < b.n; ++c) {
        const float* value = b.v + static_cast<int64_t>(selected[c]) * dim;
        for (int64_t d = 0; d < dim; ++d) out[d] += w[c] * value[d];
      }
    }
  }
}

// Scratch of attend_block for nq queries of n keys each.
inline int64_t block_score_floats(int64_t nq, int64_t n) { return nq * ((n + kLanes - 1) / kLanes * kLanes); }

// Exact softmax attention of a block of queries over their selected keys: all scores first, then
// all weighted sums. Each pass reads one kind of row (keys, then values), and the queries' chains of
// work are independent, where one query at a time would wait on its own softmax.
template <int kDim>
void attend_block(const QueryBlock& b, float* scores) {
  block_scores<kDim>(b, scores);
  block_softmax(b.nq, b.n, scores);
  block_sums<kDim>(b, scores);
}

typedef void (*AttendFunction)(const QueryBlock&, float*);

AttendFunction attend_function(int64_t dim) {
  return dim == 32 ? attend_block<32> : dim == 64 ? attend_block<64> : attend_block<0>;
}

// ---------------------------------------------------------------------------------------------
// Key packing. Byte path (head_dim <= kMaxByteDim): per (batch, head), groups of kCodeKeys keys, per
// group `code_count` vectors of kCodeKeys bytes, byte j of vector n = sign bits of dimensions
// kCodeDims * n .. kCodeDims * (n + 1) - 1 of key kCodeKeys * group + j (padding dimensions and keys
// are 0). Scalar path: ceil(head_dim / 64) words per key.

inline int64_t nibble_count(int64_t dim) { return (dim + 3) / 4; }
inline int64_t word_count(int64_t dim) { return (dim + 63) / 64; }
inline int64_t code_count(int64_t dim) { return (dim + kCodeDims - 1) / kCodeDims; }

int64_t sign_bytes(int64_t k_len, int64_t dim) {
  const int64_t keys = (k_len + kKeyAlign - 1) / kKeyAlign * kKeyAlign;
  const int64_t bytes = dim <= kMaxByteDim ? keys * code_count(dim) : keys * word_count(dim) * 8;
  return (bytes + 63) / 64 * 64;
}

void pack_keys(const SignMatchProblem& p, size_t task) {
  const int64_t dim = p.head_dim;
  uint8_t* signs = p.key_signs + static_cast<int64_t>(task) * p.sign_bytes_per_head;
  const float* keys = p.k + static_cast<int64_t>(task) * p.k_len * dim;
  std::memset(signs, 0, static_cast<size_t>(p.sign_bytes_per_head));
  if (dim > kMaxByteDim) {
    for (int64_t j = 0; j < p.k_len; ++j) {
      sign_words(keys + j * dim, dim, reinterpret_cast<uint64_t*>(signs) + j * word_count(dim));
    }
    return;
  }
  const int64_t codes = code_count(dim);
  uint64_t words[2];  // kMaxByteDim <= 128
  for (int64_t j = 0; j < p.k_len; ++j) {
    sign_words(keys + j * dim, dim, words);
    uint8_t* out = signs + (j / kCodeKeys) * codes * kCodeKeys + j % kCodeKeys;
    for (int64_t n = 0; n < codes; ++n) out[n * kCodeKeys] = code_of(words, n);
  }
}

// ---------------------------------------------------------------------------------------------
// Selection.

// An uninitialized array owned by one task (a plain template of this file, so that no
// standard-library code is shared between the ISA builds).
template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n) : data_(new T[n > 0 ? n : 1]) {}
  ~Buffer() { delete[] data_; }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return data_; }

 private:
  T* data_;
};

// Match counts of `n_groups` (< 256) groups of keys against one query, stored to `counts`; at_least[w]
// gains the number of those keys whose count exceeds above[w], for kTallies thresholds. kNibbles > 0
// fixes the nibble count, so that the query's tables can stay in registers; kStep groups share each
// table load (n_groups must be a multiple of kStep). `__restrict`: the byte stores to `counts` could
// alias anything else, and the tables would be reloaded for every group.
template <int kNibbles, int kStep, int kTallies>
void count_groups(const Bytes* __restrict query, const uint8_t* signs, int64_t runtime_nibbles,
                  const int8_t* init, int64_t n_groups, const Bytes* __restrict above, int8_t* __restrict counts,
                  int64_t* at_least) {
  const int64_t nibbles = kNibbles > 0 ? kNibbles : runtime_nibbles;
  Bytes tally[kTallies] = {};  // per byte lane, at most n_groups
  for (int64_t g = 0; g < n_groups; g += kStep) {
    const uint8_t* keys = signs + g * nibbles * kGroupKeys;
    Bytes acc[kStep];
    for (int i = 0; i < kStep; ++i) acc[i] = load_bytes(init + (g + i) * kGroupKeys);
    for (int64_t n = 0; n < nibbles; ++n) {
      const Bytes q = query[n];
      for (int i = 0; i < kStep; ++i) acc[i] += nibble_matches(q, load_bytes(keys + (i * nibbles + n) * kGroupKeys));
    }
    for (int i = 0; i < kStep; ++i) {
      store_bytes(counts + (g + i) * kGroupKeys, acc[i]);
      for (int w = 0; w < kTallies; ++w) tally[w] -= acc[i] > above[w];  // a true comparison is -1
    }
  }
  for (int w = 0; w < kTallies; ++w) at_least[w] += byte_sum(tally[w]);
}

// Counts of one tile of `n_groups` (even, < 256) groups of keys against one query into `counts`, and
// at_least[w] += the number of those keys whose count is >= window[w]. A valid key counts 1 plus its
// matching dimensions (padding dimensions, up to a multiple of four, match): at most 1 + max_matches.
#if defined(__AVX512BITALG__)
template <int kCodes, int kTallies>
void count_tile(const Code* __restrict query, const uint8_t* signs, int64_t runtime_codes, const int8_t* init,
                int64_t n_groups, const int64_t* window, int64_t max_matches, int8_t* __restrict counts,
                int64_t* at_least) {
  const int64_t codes = kCodes > 0 ? kCodes : runtime_codes;
  const __m512i all_match = _mm512_set1_epi8(static_cast<char>(max_matches));
  __m512i above[kTallies];
  for (int w = 0; w < kTallies; ++w) above[w] = _mm512_set1_epi8(static_cast<char>(window[w] - 1));
  for (int64_t g = 0; g < n_groups; g += kCodeKeys / kGroupKeys) {
    const uint8_t* keys = signs + g * codes * kGroupKeys;
    __m512i acc = _mm512_add_epi8(_mm512_loadu_si512(init + g * kGroupKeys), all_match);
    for (int64_t n = 0; n < codes; ++n) {
      const __m512i differ = _mm512_xor_si512(_mm512_loadu_si512(keys + n * kCodeKeys),
                                              reinterpret_cast<__m512i>(query[n]));
      acc = _mm512_sub_epi8(acc, _mm512_popcnt_epi8(differ));
    }
    _mm512_storeu_si512(counts + g * kGroupKeys, acc);
    for (int w = 0; w < kTallies; ++w) at_least[w] += popcount64(_mm512_cmpgt_epi8_mask(acc, above[w]));
  }
}
#else
template <int kCodes, int kTallies>
void count_tile(const Code* __restrict query, const uint8_t* signs, int64_t runtime_codes, const int8_t* init,
                int64_t n_groups, const int64_t* window, int64_t /*max_matches: counted up from init*/,
                int8_t* __restrict counts, int64_t* at_least) {
  // With few nibbles the tables stay in registers, one group at a time; otherwise kStep groups share
  // each load of a table.
  constexpr int kStep = kCodes > 0 && kCodes <= 8 ? 1 : 4;
  Bytes above[kTallies];
  for (int w = 0; w < kTallies; ++w) above[w] = splat(window[w] - 1);
  const int64_t stepped = n_groups / kStep * kStep;  // the rest is even, as n_groups is
  count_groups<kCodes, kStep, kTallies>(query, signs, runtime_codes, init, stepped, above, counts, at_least);
  if (stepped < n_groups) {
    count_groups<kCodes, 2, kTallies>(query, signs + stepped * runtime_codes * kGroupKeys, runtime_codes,
                                      init + stepped * kGroupKeys, n_groups - stepped, above,
                                      counts + stepped * kGroupKeys, at_least);
  }
}
#endif

// at_least[w] = number of keys whose stored count is >= thresholds[w], for kCount thresholds.
template <int kCount>
void count_at_least(const int8_t* counts, int64_t groups, const int64_t* thresholds, int64_t* at_least) {
  Bytes above[kCount], tally[kCount];
  for (int w = 0; w < kCount; ++w) {
    above[w] = splat(thresholds[w] - 1);
    tally[w] = Bytes{};
    at_least[w] = 0;
  }
  for (int64_t g = 0; g < groups; ++g) {
    const Bytes c = load_bytes(counts + g * kGroupKeys);
    for (int w = 0; w < kCount; ++w) tally[w] -= c > above[w];
    if ((g + 1) % kFlushGroups == 0 || g + 1 == groups) {
      for (int w = 0; w < kCount; ++w) {
        at_least[w] += byte_sum(tally[w]);
        tally[w] = Bytes{};
      }
    }
  }
}

// The interval search for the threshold: at_least(lo) >= wanted > at_least(hi) = count_hi.
struct ThresholdSearch {
  int64_t lo, hi, count_hi;
  // Takes the counts of keys at or above `count` ascending thresholds.
  void update(const int64_t* thresholds, const int64_t* at_least, int count, int64_t wanted) {
    for (int w = 0; w < count; ++w) {
      const int64_t t = thresholds[w];
      if (t <= lo) continue;
      if (t >= hi) break;
      if (at_least[w] >= wanted) {
        lo = t;
      } else {
        hi = t;
        count_hi = at_least[w];
        break;
      }
    }
  }
};

// Appending the positions of the set bits of `w` (plus `base`) to out[n...]; every way writes up to
// kAppendSlack entries past the new end (the buffers have that room).
constexpr int64_t kAppendSlack = 16;

// Two positions at a time: a word with up to two bits (the common case with few selected keys) takes
// no branch that can be mispredicted.
inline int64_t append_sparse(uint64_t w, int32_t base, int32_t* out, int64_t n) {
  const int64_t count = popcount64(w);
  int32_t* o = out + n;
  constexpr uint64_t kTop = uint64_t{1} << 63;  // keeps ctz defined once w runs out of bits
  do {
    o[0] = base + __builtin_ctzll(w | kTop);
    w &= w - 1;
    o[1] = base + __builtin_ctzll(w | kTop);
    w &= w - 1;
    o += 2;
  } while (w);
  return n + count;
}

// The positions of the set bits of each byte value, padded with zeros.
struct BytePositions {
  uint8_t of[256][8];
};

constexpr BytePositions make_byte_positions() {
  BytePositions t{};
  for (int b = 0; b < 256; ++b) {
    int n = 0;
    for (int i = 0; i < 8; ++i) {
      if (b >> i & 1) t.of[b][n++] = static_cast<uint8_t>(i);
    }
  }
  return t;
}

constexpr BytePositions kBytePositions = make_byte_positions();

// A byte of the word at a time from a table, without any branch: pays where the words hold several
// bits each (many selected keys), as a loop per bit mispredicts its end at almost every word.
inline int64_t append_dense(uint64_t w, int32_t base, int32_t* out, int64_t n) {
  for (int i = 0; i < 8; ++i) {
    const unsigned byte = (w >> (8 * i)) & 255;
    const uint8_t* positions = kBytePositions.of[byte];
#if defined(__AVX2__)
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(positions));
    const __m256i indices = _mm256_add_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_set1_epi32(base + 8 * i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + n), indices);
#else
    for (int j = 0; j < 8; ++j) out[n + j] = base + 8 * i + positions[j];
#endif
    n += popcount64(byte);
  }
  return n;
}

#if defined(__AVX512VBMI2__)
struct Iota {
  alignas(64) uint8_t of[64];
};

constexpr Iota make_iota() {
  Iota t{};
  for (int i = 0; i < 64; ++i) t.of[i] = static_cast<uint8_t>(i);
  return t;
}

constexpr Iota kIota = make_iota();

// One byte compression (VBMI2) packs the positions of all set bits: no branch on the number of bits
// unless more than 16 are set.
inline int64_t append_compressed(uint64_t w, int32_t base, int32_t* out, int64_t n) {
  const __m512i positions = _mm512_maskz_compress_epi8(w, _mm512_load_si512(kIota.of));
  const __m512i offset = _mm512_set1_epi32(base);
  const int64_t count = popcount64(w);
  __m128i first;  // _mm512_castsi512_si128 trips GCC 12's -Wmaybe-uninitialized
  std::memcpy(&first, &positions, sizeof(first));
  _mm512_storeu_si512(out + n, _mm512_add_epi32(_mm512_maskz_cvtepu8_epi32(0xFFFF, first), offset));
  if (count > 16) {
    alignas(64) uint8_t bytes[64];
    _mm512_store_si512(bytes, positions);
    for (int64_t c = 16; c < count; c += 16) {
      const __m128i chunk = _mm_load_si128(reinterpret_cast<const __m128i*>(bytes + c));
      _mm512_storeu_si512(out + n + c, _mm512_add_epi32(_mm512_maskz_cvtepu8_epi32(0xFFFF, chunk), offset));
    }
  }
  return n + count;
}
#endif

// The positions of the set bits of `w` (plus `base`) appended to out[n...]; kDense: many set bits.
template <bool kDense>
inline int64_t append_bits(uint64_t w, int32_t base, int32_t* out, int64_t n) {
#if defined(__AVX512VBMI2__)
  return append_compressed(w, base, out, n);
#else
  return kDense ? append_dense(w, base, out, n) : append_sparse(w, base, out, n);
#endif
}

// Bit i of *above / *equal: whether counts[i] > t / == t, for 64 counts.
#if defined(__AVX512BW__)
inline uint64_t counts_above(const int8_t* counts, const __m512i& t) {
  return _mm512_cmpgt_epi8_mask(_mm512_loadu_si512(counts), t);
}

inline uint64_t counts_equal(const int8_t* counts, const __m512i& t) {
  return _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(counts), t);
}

inline __m512i splat_threshold(int64_t t) { return _mm512_set1_epi8(static_cast<char>(t)); }
#else
inline uint64_t counts_above(const int8_t* counts, Bytes t) {
  return byte_mask(load_bytes(counts) > t) | static_cast<uint64_t>(byte_mask(load_bytes(counts + 32) > t)) << 32;
}

inline uint64_t counts_equal(const int8_t* counts, Bytes t) {
  return byte_mask(load_bytes(counts) == t) | static_cast<uint64_t>(byte_mask(load_bytes(counts + 32) == t)) << 32;
}

inline Bytes splat_threshold(int64_t t) { return splat(t); }
#endif

// Every key above `t`, and the lowest-index keys at `t` until `wanted` keys are taken (`count_above`
// keys are above t), into selected[0 .. wanted), ascending. kDense: many keys per 64 are selected.
template <bool kDense>
void select_keys(const int8_t* counts, int64_t groups, int64_t t, int64_t count_above, int64_t wanted,
                 int32_t* selected) {
  const auto threshold = splat_threshold(t);
  int64_t ties = wanted - count_above;
  int64_t n = 0, g = 0;
  for (; ties > 0 && g < groups; g += 2) {  // 64 keys at a time: groups is even, kKeyAlign = 2 * kGroupKeys
    const int8_t* c = counts + g * kGroupKeys;
    uint64_t take = counts_above(c, threshold);
    const uint64_t at = counts_equal(c, threshold);
    const int64_t n_at = popcount64(at);
    if (n_at <= ties) {
      take |= at;
      ties -= n_at;
    } else {
      take |= lowest_bits(at, ties);
      ties = 0;
    }
    n = append_bits<kDense>(take, static_cast<int32_t>(g * kGroupKeys), selected, n);
  }
  for (; g < groups; g += 2) {  // keys above t only
    const uint64_t take = counts_above(counts + g * kGroupKeys, threshold);
    n = append_bits<kDense>(take, static_cast<int32_t>(g * kGroupKeys), selected, n);
  }
}

// Selections of the queries first..last of one (batch, head) pair by match counts in bytes;
// selected + (i - first) * stride gets query i's `wanted` keys. kNibbles > 0 fixes the number of
// nibbles per key (head dimensions 32 and 64).
template <int kNibbles>
void select_bytes(const SignMatchProblem& p, int64_t bh, int64_t first, int64_t last, int64_t wanted,
                  int32_t* selected, int64_t stride) {
  const int64_t dim = p.head_dim;
  const int64_t nibbles = kNibbles > 0 ? kNibbles : nibble_count(dim);
  const int64_t groups = p.padded_keys / kGroupKeys;
  const int64_t max_count = 1 + 4 * nibbles;  // valid keys count 1 + matches, padding dimensions match
  const uint8_t* signs = p.key_signs + bh * p.sign_bytes_per_head;
  const int8_t* init = p.key_init + bh / p.heads * p.padded_keys;
  constexpr int kCodes = kNibbles * 4 / kCodeDims;  // kNibbles is even
  const int64_t codes = code_count(dim);
  // With few nibbles, two thresholds' tallies (the threshold mostly repeats there) fit in registers
  // beside the query's tables: four would spill. Otherwise four fit.
  constexpr int kTallies = kNibbles > 0 && kNibbles <= 8 ? 2 : kWindow;

  Buffer<Code> query_codes(kQueryTile * codes);
  Buffer<Bytes> count_vectors(kQueryTile * groups);
  int8_t* const all_counts = reinterpret_cast<int8_t*>(count_vectors.get());
  int64_t guess = 1 + 2 * nibbles + nibbles / 2;  // the last threshold found
  const bool dense = wanted * 64 >= kDenseBits * p.valid_count[bh / p.heads];  // selected keys per 64

  for (int64_t q0 = first; q0 < last; q0 += kQueryTile) {
    const int64_t nq = last - q0 < kQueryTile ? last - q0 : kQueryTile;
    // Counts of every key for nq queries, a tile of keys at a time, and the number of keys at or
    // above kTallies thresholds around the last one: nearby queries have similar thresholds.
    int64_t window[kTallies];
    for (int w = 0; w < kTallies; ++w) window[w] = guess - (kTallies - 1) / 2 + w;
    int64_t at_least[kQueryTile][kTallies] = {};
    for (int64_t i = 0; i < nq; ++i) {
      uint64_t words[2];  // kMaxByteDim <= 128
      sign_words(p.q + (bh * p.q_len + q0 + i) * dim, dim, words);
      for (int64_t n = 0; n < codes; ++n) query_codes.get()[i * codes + n] = query_code(code_of(words, n));
    }
    for (int64_t g = 0; g < groups; g += kTileGroups) {
      const int64_t n_groups = groups - g < kTileGroups ? groups - g : kTileGroups;
      for (int64_t i = 0; i < nq; ++i) {
        count_tile<kCodes, kTallies>(query_codes.get() + i * codes, signs + g * codes * kGroupKeys, codes,
                                     init + g * kGroupKeys, n_groups, window, max_count - 1,
                                     all_counts + i * p.padded_keys + g * kGroupKeys, at_least[i]);
      }
    }
    // Threshold and selection per query: the window first, then thresholds spread over the interval
    // still open.
    for (int64_t i = 0; i < nq; ++i) {
      const int8_t* counts = all_counts + i * p.padded_keys;
      ThresholdSearch search{1, max_count + 1, 0};  // every valid key counts >= 1
      search.update(window, at_least[i], kTallies, wanted);
      while (search.hi - search.lo > 1) {
        int64_t thresholds[kWindow], n[kWindow];
        for (int w = 0; w < kWindow; ++w) {
          thresholds[w] = search.lo + (search.hi - search.lo) * (w + 1) / (kWindow + 1);
        }
        count_at_least<kWindow>(counts, groups, thresholds, n);
        search.update(thresholds, n, kWindow, wanted);
      }
      guess = search.lo;
      int32_t* out = selected + (q0 + i - first) * stride;
      if (dense) {
        select_keys<true>(counts, groups, search.lo, search.count_hi, wanted, out);
      } else {
        select_keys<false>(counts, groups, search.lo, search.count_hi, wanted, out);
      }
    }
  }
}

// The same selections for head dimensions above kMaxByteDim: counts per key from 64-bit words, the
// threshold from a histogram.
void select_words(const SignMatchProblem& p, int64_t bh, int64_t first, int64_t last, int64_t wanted,
                  int32_t* selected, int64_t stride) {
  const int64_t dim = p.head_dim;
  const int64_t words = word_count(dim);
  const uint64_t last_mask = dim % 64 ? (uint64_t{1} << (dim % 64)) - 1 : ~uint64_t{0};
  const uint64_t* signs = reinterpret_cast<const uint64_t*>(p.key_signs + bh * p.sign_bytes_per_head);
  const int8_t* init = p.key_init + bh / p.heads * p.padded_keys;
  Buffer<uint64_t> query_words(words);
  Buffer<int64_t> counts(p.k_len);  // -1 for invalid keys
  Buffer<int64_t> histogram(dim + 1);
  for (int64_t i = first; i < last; ++i) {
    sign_words(p.q + (bh * p.q_len + i) * dim, dim, query_words.get());
    for (int64_t c = 0; c <= dim; ++c) histogram.get()[c] = 0;
    for (int64_t j = 0; j < p.k_len; ++j) {
      int64_t count = -1;
      if (init[j] == kValidKey) {
        count = 0;
        for (int64_t w = 0; w < words; ++w) {
          const uint64_t same = ~(signs[j * words + w] ^ query_words.get()[w]);
          count += popcount64(w + 1 < words ? same : same & last_mask);
        }
        ++histogram.get()[count];
      }
      counts.get()[j] = count;
    }
    int64_t t = dim, count_above = 0;
    while (count_above + histogram.get()[t] < wanted) count_above += histogram.get()[t--];
    int64_t ties = wanted - count_above, n = 0;
    int32_t* out = selected + (i - first) * stride;
    for (int64_t j = 0; j < p.k_len; ++j) {
      const int64_t c = counts.get()[j];
      if (c > t || (c == t && ties-- > 0)) out[n++] = static_cast<int32_t>(j);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tasks: one block of queries of one (batch, head) pair.

QueryBlock query_block(const SignMatchProblem& p, int64_t bh, int64_t first, int64_t nq, const int32_t* selected,
                       int64_t stride, int64_t n) {
  const int64_t dim = p.head_dim;
  return QueryBlock{p.q + (bh * p.q_len + first) * dim, p.k + bh * p.k_len * dim, p.v + bh * p.k_len * dim,
                    p.out + (bh * p.q_len + first) * dim, dim, nq, p.scale, selected, stride, n};
}

// Every valid key for every query (top_k >= valid keys): one key list for all, queries in blocks
// whose scores fit kMaxScores floats.
void attend_all(const SignMatchProblem& p, int64_t bh, int64_t first, int64_t last, int64_t n_valid) {
  constexpr int64_t kMaxScores = 16 << 10;
  const int8_t* init = p.key_init + bh / p.heads * p.padded_keys;
  Buffer<int32_t> selected(n_valid);
  int64_t n = 0;
  for (int64_t j = 0; j < p.k_len; ++j) {
    if (init[j] == kValidKey) selected.get()[n++] = static_cast<int32_t>(j);
  }
  const int64_t fit = kMaxScores / block_score_floats(1, n);
  const int64_t per_block = fit > 1 ? fit : 1;
  const int64_t nq = last - first < per_block ? last - first : per_block;
  Buffer<Floats> scores(block_score_floats(nq, n) / kLanes);
  const AttendFunction attend_block = attend_function(p.head_dim);
  for (int64_t i = first; i < last; i += nq) {
    const int64_t count = last - i < nq ? last - i : nq;
    attend_block(query_block(p, bh, i, count, selected.get(), 0, n), reinterpret_cast<float*>(scores.get()));
  }
}

void attend(const SignMatchProblem& p, size_t task) {
  const int64_t blocks = (p.q_len + p.query_block - 1) / p.query_block;
  const int64_t bh = static_cast<int64_t>(task) / blocks;
  const int64_t block = static_cast<int64_t>(task) % blocks;
  const int64_t first = block * p.query_block;
  const int64_t last = first + p.query_block < p.q_len ? first + p.query_block : p.q_len;
  const int64_t n_valid = p.valid_count[bh / p.heads];
  const int64_t wanted = p.top_k < n_valid ? p.top_k : n_valid;
  if (wanted == 0) {
    float* out = p.out + (bh * p.q_len + first) * p.head_dim;
    std::memset(out, 0, sizeof(float) * static_cast<size_t>((last - first) * p.head_dim));
    return;
  }
  if (wanted == n_valid) return attend_all(p, bh, first, last, n_valid);

  // Queries are selected in order: one's overrun lands where the next one's keys go, the last one's in
  // the slack.
  const int64_t stride = wanted;
  Buffer<int32_t> selected((last - first) * stride + kAppendSlack);
  if (p.head_dim > kMaxByteDim) {
    select_words(p, bh, first, last, wanted, selected.get(), stride);
  } else if (p.head_dim == 32) {
    select_bytes<8>(p, bh, first, last, wanted, selected.get(), stride);
  } else if (p.head_dim == 64) {
    select_bytes<16>(p, bh, first, last, wanted, selected.get(), stride);
  } else {
    select_bytes<0>(p, bh, first, last, wanted, selected.get(), stride);
  }
  Buffer<Floats> scores(block_score_floats(last - first, wanted) / kLanes);
  attend_function(p.head_dim)(query_block(p, bh, first, last - first, selected.get(), stride, wanted),
                              reinterpret_cast<float*>(scores.get()));
}

const SignMatchKernels kKernels = {SMA_STR(SMA_ISA), sign_bytes, pack_keys, attend};

}  // namespace

const SignMatchKernels& SMA_CAT(kernels_, SMA_ISA)() { return kKernels; }

}  // namespace onnx_approx
