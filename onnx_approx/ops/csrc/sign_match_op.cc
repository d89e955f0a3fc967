// ONNX Runtime custom op `ai.onnx_approx::SignMatchAttention` (version 1) and the library entry point.
//
// Semantics (normative statement: onnx_approx/ops/reference.py):
//   inputs  Q [B,H,Sq,D], K [B,H,Sk,D], V [B,H,Sk,D] float32; optional key_padding_mask [B,Sk]
//           (bool or int64, nonzero = valid key)
//   attrs   top_k (int >= 1, required); scale (float, absent or NaN = 1/sqrt(D))
//   output  [B,H,Sq,D]: per query, exact softmax attention over the top_k valid keys whose sign
//           bits match the query's in the most dimensions (ties to the lower key index); a query
//           with no valid key outputs zeros.
//
// Built without linking to onnxruntime (ORT_API_MANUAL_INIT): the API table comes from
// RegisterCustomOps, requested for the ORT_API_VERSION of the headers we were compiled against.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sign_match_kernel.h"

namespace onnx_approx {
namespace {

constexpr const char* kDomain = "ai.onnx_approx";
constexpr const char* kOpType = "SignMatchAttention";
// Queries per parallel task: the kernel's exact-attention passes go over a whole block, whose
// queries share the key and value rows in cache (256 measured best from 64 to 512).
constexpr int64_t kQueryBlock = 256;
constexpr int64_t kMaxKeys = (int64_t{1} << 31) - kKeyAlign;  // key indices are int32 in the kernel

[[noreturn]] void fail(const std::string& message) {
  throw Ort::Exception(std::string(kOpType) + ": " + message, ORT_INVALID_ARGUMENT);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Uninitialized bytes starting on a cache line: the kernel's vector loads then never straddle two lines.
class CacheAlignedBytes {
 public:
  explicit CacheAlignedBytes(size_t size) : raw_(new uint8_t[size + kLine]) {
    data_ = raw_.get() + (kLine - reinterpret_cast<uintptr_t>(raw_.get()) % kLine) % kLine;
  }
  uint8_t* data() const { return data_; }

 private:
  static constexpr size_t kLine = 64;
  std::unique_ptr<uint8_t[]> raw_;
  uint8_t* data_;
};

const SignMatchKernels* select_kernels(std::string* error) {
  const char* forced = std::getenv("ONNX_APPROX_OPS_ISA");
  const std::string want = forced ? forced : "";
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool has_avx512 = __builtin_cpu_supports("x86-64-v4");
  const bool has_icl = has_avx512 && __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("avx512vbmi2");
  const bool has_avx2 = __builtin_cpu_supports("x86-64-v3");
  if (want.empty()) {
    return has_icl ? &kernels_avx512icl() : has_avx512 ? &kernels_avx512() : has_avx2 ? &kernels_avx2() : &kernels_generic();
  }
  if (want == "avx512icl" && has_icl) return &kernels_avx512icl();
  if (want == "avx512" && has_avx512) return &kernels_avx512();
  if (want == "avx2" && has_avx2) return &kernels_avx2();
#else
  if (want.empty()) return &kernels_generic();
#endif
  if (want == "generic") return &kernels_generic();
  *error = "ONNX_APPROX_OPS_ISA=" + want + " is not one of generic, avx2, avx512, avx512icl supported by this CPU";
  return nullptr;
}

struct SignMatchKernel {
  int64_t top_k;
  float scale;  // NaN: 1/sqrt(D)
  const SignMatchKernels* kernels;

  OrtStatusPtr ComputeV2(OrtKernelContext* raw_context) const {
    try {
      Compute(raw_context);
      return nullptr;
    } catch (const Ort::Exception& e) {
      return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
    } catch (const std::exception& e) {
      return Ort::GetApi().CreateStatus(ORT_FAIL, (std::string(kOpType) + ": " + e.what()).c_str());
    }
  }

  void Compute(OrtKernelContext* raw_context) const {
    Ort::KernelContext context(raw_context);
    const char* names[3] = {"Q", "K", "V"};
    std::vector<int64_t> shapes[3];
    const float* data[3];
    for (size_t i = 0; i < 3; ++i) {
      Ort::ConstValue value = context.GetInput(i);
      if (!value) fail(std::string("input ") + names[i] + " is missing");
      shapes[i] = value.GetTensorTypeAndShapeInfo().GetShape();
      if (shapes[i].size() != 4) {
        fail(std::string("input ") + names[i] + " must have rank 4 [B, H, S, D], got shape " + shape_text(shapes[i]));
      }
      data[i] = value.GetTensorData<float>();
    }
    const std::vector<int64_t>& qs = shapes[0];
    const std::vector<int64_t>& ks = shapes[1];
    if (ks[0] != qs[0] || ks[1] != qs[1] || ks[3] != qs[3]) {
      fail("K " + shape_text(ks) + " must match Q " + shape_text(qs) + " in B, H and D");
    }
    if (shapes[2] != ks) fail("V " + shape_text(shapes[2]) + " must have the shape of K " + shape_text(ks));
    const int64_t batch = qs[0], heads = qs[1], q_len = qs[2], k_len = ks[2], dim = qs[3];
    if (k_len > kMaxKeys) {
      fail("key length " + std::to_string(k_len) + " is above the supported " + std::to_string(kMaxKeys));
    }

    // Per key: kValidKey or kInvalidKey (masked out, or padding up to a multiple of kKeyAlign).
    const int64_t padded_keys = (k_len + kKeyAlign - 1) / kKeyAlign * kKeyAlign;
    CacheAlignedBytes init_bytes(static_cast<size_t>(batch * padded_keys));
    int8_t* key_init = reinterpret_cast<int8_t*>(init_bytes.data());
    std::memset(key_init, kInvalidKey, static_cast<size_t>(batch * padded_keys));
    std::vector<int64_t> valid_count(static_cast<size_t>(batch), 0);
    Ort::ConstValue mask = context.GetInputCount() > 3 ? context.GetInput(3) : Ort::ConstValue{nullptr};
    const bool* as_bool = nullptr;
    const int64_t* as_int = nullptr;
    if (mask) {
      const Ort::TensorTypeAndShapeInfo info = mask.GetTensorTypeAndShapeInfo();
      const std::vector<int64_t> ms = info.GetShape();
      if (ms.size() != 2 || ms[0] != batch || ms[1] != k_len) {
        fail("key_padding_mask must have shape [B, Sk] = " + shape_text({batch, k_len}) + ", got " + shape_text(ms));
      }
      const ONNXTensorElementDataType type = info.GetElementType();
      if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL) as_bool = mask.GetTensorData<bool>();
      if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) as_int = mask.GetTensorData<int64_t>();
      if (!as_bool && !as_int) fail("key_padding_mask must be bool or int64");
    }
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t j = 0; j < k_len; ++j) {
        const bool ok = as_bool ? as_bool[b * k_len + j] : as_int ? as_int[b * k_len + j] != 0 : true;
        key_init[b * padded_keys + j] = ok ? kValidKey : kInvalidKey;
        valid_count[static_cast<size_t>(b)] += ok;
      }
    }

    Ort::UnownedValue output = context.GetOutput(0, qs);
    if (batch * heads * q_len * dim == 0) return;
    if (k_len == 0) {  // no key at all: every query outputs zeros
      std::memset(output.GetTensorMutableData<float>(), 0, sizeof(float) * batch * heads * q_len * dim);
      return;
    }

    SignMatchProblem problem{};
    problem.q = data[0];
    problem.k = data[1];
    problem.v = data[2];
    problem.out = output.GetTensorMutableData<float>();
    problem.batch = batch;
    problem.heads = heads;
    problem.q_len = q_len;
    problem.k_len = k_len;
    problem.head_dim = dim;
    problem.top_k = top_k;
    problem.scale = std::isnan(scale) ? 1.0f / std::sqrt(static_cast<float>(dim)) : scale;
    problem.padded_keys = padded_keys;
    problem.query_block = kQueryBlock;
    problem.sign_bytes_per_head = kernels->sign_bytes(k_len, dim);
    // Filled by pack_keys.
    CacheAlignedBytes key_signs(static_cast<size_t>(batch * heads * problem.sign_bytes_per_head));
    problem.key_signs = key_signs.data();
    problem.key_init = key_init;
    problem.valid_count = valid_count.data();

    // Tasks run on ORT's intra-op thread pool; a failure there (out of memory) is reported after.
    struct Job {
      const SignMatchProblem* problem;
      void (*work)(const SignMatchProblem&, size_t);
      std::atomic<bool> failed{false};
    };
    auto run = [](void* raw, size_t task) {
      Job* job = static_cast<Job*>(raw);
      try {
        job->work(*job->problem, task);
      } catch (...) {
        job->failed = true;
      }
    };
    Job pack{&problem, kernels->pack_keys};
    context.ParallelFor(run, static_cast<size_t>(batch * heads), 0, &pack);
    Job attend{&problem, kernels->attend};
    const int64_t blocks = (q_len + kQueryBlock - 1) / kQueryBlock;
    if (!pack.failed) context.ParallelFor(run, static_cast<size_t>(batch * heads * blocks), 0, &attend);
    if (pack.failed || attend.failed) throw Ort::Exception(std::string(kOpType) + ": out of memory", ORT_FAIL);
  }
};

struct SignMatchOp : Ort::CustomOpBase<SignMatchOp, SignMatchKernel, true> {
  const SignMatchKernels* kernels = nullptr;

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* raw_info, void** kernel) const {
    try {
      Ort::ConstKernelInfo info(raw_info);
      int64_t top_k = 0;
      try {
        top_k = info.GetAttribute<int64_t>("top_k");
      } catch (const Ort::Exception&) {
        fail("attribute top_k (int >= 1) is required");
      }
      if (top_k < 1) fail("attribute top_k must be >= 1, got " + std::to_string(top_k));
      float scale = NAN;
      OrtStatus* status = api.KernelInfoGetAttribute_float(raw_info, "scale", &scale);
      if (status) {  // absent: 1/sqrt(D)
        api.ReleaseStatus(status);
        scale = NAN;
      }
      *kernel = new SignMatchKernel{top_k, scale, kernels};
      return nullptr;
    } catch (const Ort::Exception& e) {
      return api.CreateStatus(e.GetOrtErrorCode(), e.what());
    }
  }

  const char* GetName() const { return kOpType; }
  size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    // The mask's type (bool or int64) is checked in Compute.
    return index == 3 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 3 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace
}  // namespace onnx_approx

extern "C" {

// The ORT C API version this library was built for; Python compares it with the runtime's before
// registering (onnx_approx.ops.register_library).
__attribute__((visibility("default"))) int onnx_approx_ort_api_version() { return ORT_API_VERSION; }

// The instruction-set variant the kernel runs with on this CPU ("generic", "avx2", "avx512", "avx512icl"), or
// the reason none can be used.
__attribute__((visibility("default"))) const char* onnx_approx_kernel_isa() {
  static std::string description;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string error;
    const onnx_approx::SignMatchKernels* kernels = onnx_approx::select_kernels(&error);
    description = kernels ? kernels->isa : error;
  });
  return description.c_str();
}

__attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                              const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {
    // The runtime is older than the headers we were built against: report it with the oldest API.
    const std::string message = std::string("onnx_approx custom-op library was built for ONNX Runtime API ") +
                                std::to_string(ORT_API_VERSION) + " but the runtime is " +
                                api_base->GetVersionString() + "; rebuild it (make ops) against older headers";
    return api_base->GetApi(1)->CreateStatus(ORT_FAIL, message.c_str());
  }
  Ort::InitApi(api);
  std::string error;
  const onnx_approx::SignMatchKernels* kernels = onnx_approx::select_kernels(&error);
  if (!kernels) return api->CreateStatus(ORT_FAIL, error.c_str());

  // One domain and op for the library's lifetime, shared by every session that registers it.
  static onnx_approx::SignMatchOp op;
  static Ort::CustomOpDomain domain{nullptr};
  static std::mutex mutex;
  try {
    std::lock_guard<std::mutex> lock(mutex);
    op.kernels = kernels;
    if (!domain) {
      domain = Ort::CustomOpDomain(onnx_approx::kDomain);
      domain.Add(&op);
    }
    Ort::UnownedSessionOptions(options).Add(domain);
  } catch (const Ort::Exception& e) {
    return api->CreateStatus(e.GetOrtErrorCode(), e.what());
  }
  return nullptr;
}

}  // extern "C"
