// Tensors: non-owning NHWC views and an owning, 64-byte-aligned tensor (DESIGN §2).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace convkit {

// Four extents. Activations are {N, H, W, C}; weights are {KH, KW, C_in / groups, C_out}.
using Dims = std::array<int64_t, 4>;

// "{2, 5, 7, 4}".
std::string to_string(const Dims& dims);

// The product of the extents. Throws Error (invalid argument) on a negative extent or when the
// product overflows int64_t.
int64_t num_elements(const Dims& dims);

// A dense row-major fp32 tensor owned by someone else. `data` may be null only when the tensor has
// no elements.
struct TensorView {
  float* data = nullptr;
  Dims dims{};
};

struct ConstTensorView {
  const float* data = nullptr;
  Dims dims{};

  ConstTensorView() = default;
  ConstTensorView(const float* d, const Dims& s) : data(d), dims(s) {}
  ConstTensorView(const TensorView& v)
      : data(v.data), dims(v.dims) {}  // NOLINT: implicit on purpose
};

// One piece of an input given as the channel-wise concatenation of several tensors
// (Conv2d::run_concatenated): {N, H, W, channels} of x's N, H and W, element (n, h, w, c) at
// data[((n * H + h) * W + w) * pixel_stride + c] -- a dense tensor (pixel_stride == channels) or
// a run of channels of a wider one (YOLO's C2f split halves).
struct ChannelPiece {
  const float* data = nullptr;
  int64_t channels = 0;
  int64_t pixel_stride = 0;
};

namespace internal {
// Allocates 64-byte-aligned storage (one cache line, one AVX-512 vector) for Tensor.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlignment); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const {
    return true;
  }
};
}  // namespace internal

// An owning dense fp32 tensor, zero-initialised. Copyable and movable.
class Tensor {
 public:
  Tensor() = default;
  // Throws Error (invalid argument) on a negative extent or an overflowing element count.
  explicit Tensor(const Dims& dims, float fill = 0.0f)
      : dims_(dims), data_(static_cast<std::size_t>(num_elements(dims)), fill) {}

  const Dims& dims() const { return dims_; }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }

  TensorView view() { return {data_.data(), dims_}; }
  ConstTensorView view() const { return {data_.data(), dims_}; }
  operator TensorView() { return view(); }             // NOLINT: implicit on purpose
  operator ConstTensorView() const { return view(); }  // NOLINT: implicit on purpose

  // Element (i0, i1, i2, i3), e.g. (n, h, w, c). Unchecked.
  float& operator()(int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return data_[offset(i0, i1, i2, i3)];
  }
  float operator()(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
    return data_[offset(i0, i1, i2, i3)];
  }

 private:
  std::size_t offset(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
    return static_cast<std::size_t>(((i0 * dims_[1] + i1) * dims_[2] + i2) * dims_[3] + i3);
  }

  Dims dims_{};
  std::vector<float, internal::AlignedAllocator<float>> data_;
};

}  // namespace convkit
