// Sign-matching attention: the compute kernel, free of ONNX Runtime types.
//
// sign_match_kernel.cc is compiled once per instruction-set level (generic x86-64 or other CPU,
// AVX2, AVX-512) into its own namespace; sign_match_op.cc picks one table at load time from what
// the CPU supports. Nothing in this header may be an inline function or template: each ISA
// translation unit would compile its own copy and the linker could keep an AVX-512 one for all.
#pragma once

#include <cstddef>
#include <cstdint>

namespace onnx_approx {

// Keys are handled in chunks of 256: per chunk and head dimension, one 256-bit plane holds the
// sign bits of 256 keys (bit j of the plane = signbit of key j's value in that dimension).
constexpr int64_t kChunkKeys = 256;
constexpr int64_t kChunkWords = kChunkKeys / 64;

// One plane; the kernels load planes as aligned 256-bit vectors.
struct alignas(32) PlaneWords {
  uint64_t words[kChunkWords];
};

struct SignMatchProblem {
  const float* q;  // [B, H, Sq, D]
  const float* k;  // [B, H, Sk, D]
  const float* v;  // [B, H, Sk, D]
  float* out;      // [B, H, Sq, D]
  int64_t batch, heads, q_len, k_len, head_dim;
  int64_t top_k;  // >= 1
  float scale;
  int64_t chunks;             // ceil(k_len / kChunkKeys)
  int64_t query_block;        // queries per parallel task
  PlaneWords* key_planes;     // [B*H][chunks][head_dim], filled by pack_keys
  const uint64_t* key_valid;  // [B][chunks][kChunkWords]: bit set = valid key (never beyond k_len)
  const int64_t* valid_count;  // [B]: number of valid keys
};

struct SignMatchKernels {
  const char* isa;
  // Fills problem.key_planes for one (batch, head) pair; task = b * heads + h.
  void (*pack_keys)(const SignMatchProblem& problem, size_t task);
  // Computes the output rows of one block of queries of one (batch, head) pair;
  // task = (b * heads + h) * blocks + block.
  void (*attend)(const SignMatchProblem& problem, size_t task);
};

const SignMatchKernels& kernels_generic();
#if defined(__x86_64__)
const SignMatchKernels& kernels_avx2();
const SignMatchKernels& kernels_avx512();
#endif

}  // namespace onnx_approx
