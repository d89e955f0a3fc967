// Sign-matching attention: the compute kernel, free of ONNX Runtime types.
//
// sign_match_kernel.cc is compiled once per instruction-set level (generic x86-64 or other CPU,
// AVX2, AVX-512, AVX-512 with BITALG and VBMI2) into its own namespace; sign_match_op.cc picks one
// table at load time from what the CPU supports. Nothing in this header may be an inline function or template: each ISA
// translation unit would compile its own copy and the linker could keep an AVX-512 one for all.
#pragma once

#include <cstddef>
#include <cstdint>

namespace onnx_approx {

// Keys are padded to a multiple of kKeyAlign; the padding keys are invalid (never selected).
constexpr int64_t kKeyAlign = 64;

// Per key, the validity byte in SignMatchProblem::key_init.
constexpr int8_t kValidKey = 1;
constexpr int8_t kInvalidKey = -128;

struct SignMatchProblem {
  const float* q;  // [B, H, Sq, D]
  const float* k;  // [B, H, Sk, D]
  const float* v;  // [B, H, Sk, D]
  float* out;      // [B, H, Sq, D]
  int64_t batch, heads, q_len, k_len, head_dim;
  int64_t top_k;  // >= 1
  float scale;
  int64_t padded_keys;          // k_len rounded up to kKeyAlign
  int64_t query_block;          // queries per parallel task
  uint8_t* key_signs;           // [B*H][sign_bytes(...)], filled by pack_keys, layout private to the kernel
  int64_t sign_bytes_per_head;  // sign_bytes(k_len, head_dim) of the kernels in use
  const int8_t* key_init;       // [B][padded_keys]: kValidKey or kInvalidKey (padding and beyond k_len)
  const int64_t* valid_count;   // [B]: number of valid keys
};

struct SignMatchKernels {
  const char* isa;
  // Bytes of packed key signs per (batch, head) pair, a multiple of 64.
  int64_t (*sign_bytes)(int64_t k_len, int64_t head_dim);
  // Fills the key signs of one (batch, head) pair; task = b * heads + h.
  void (*pack_keys)(const SignMatchProblem& problem, size_t task);
  // Computes the output rows of one block of queries of one (batch, head) pair;
  // task = (b * heads + h) * blocks + block.
  void (*attend)(const SignMatchProblem& problem, size_t task);
};

const SignMatchKernels& kernels_generic();
#if defined(__x86_64__)
const SignMatchKernels& kernels_avx2();
const SignMatchKernels& kernels_avx512();
const SignMatchKernels& kernels_avx512icl();
#endif

}  // namespace onnx_approx
