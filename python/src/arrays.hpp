// numpy arrays in and out of the extension.
//
// In: any array nanobind can import (numpy of any real dtype and any strides); nanobind converts
// it to a dense C-ordered float32 copy when it is not one already, and passes a float32 C-ordered
// array through without a copy. Out: new float32 C-ordered numpy arrays that own their memory.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "convkit/tensor.hpp"

namespace convkit::python {

using InputArray = nanobind::ndarray<const float, nanobind::c_contig, nanobind::device::cpu>;
using OutputArray = nanobind::ndarray<nanobind::numpy, float>;
// A caller's array convkit writes into (a plan's `out=`): float32, C-contiguous, writable, on the
// CPU; never converted.
using WritableArray = nanobind::ndarray<float, nanobind::c_contig, nanobind::device::cpu>;

// "(2, 5, 7, 4)" (or "(5,)"), as Python prints a shape.
std::string shape_string(const int64_t* dims, size_t rank);
std::string shape_string(const Dims& dims);

// A plan's input: any numpy array or DLPack producer (torch CPU tensors, JAX arrays, ...) of
// exactly `dims`. Dense float32 C-ordered data are read in place; other dtypes and strides are
// converted once (the returned array holds the copy). Throws convkit::Error naming `op` and `arg`:
// invalid argument when `value` is not an array convertible to float32, shape mismatch when its
// shape is not `dims`.
InputArray import_input(std::string_view op, std::string_view arg, nanobind::handle value,
                        const Dims& dims);

// A plan's `out`: a writable C-contiguous float32 CPU array of exactly `dims` (with `flat`, 1-D
// of their element count), written in place. Throws convkit::Error (invalid argument, or shape
// mismatch) naming `op` and `arg`, with what was given (type, dtype, shape, strides, read-only).
WritableArray import_output(std::string_view op, std::string_view arg, nanobind::handle value,
                            const Dims& dims, bool flat = false);

// Throws convkit::Error (invalid argument) when `out` (of out_size floats) overlaps `in`: outputs
// must not alias inputs the op reads.
void check_distinct(std::string_view op, std::string_view out_arg, const float* out,
                    int64_t out_size, std::string_view in_arg, const float* in, int64_t in_size);

// The view of a 4-D input; throws convkit::Error (shape mismatch) naming `op` and `arg` when the
// array is not 4-D. `layout` names the axes in the message, e.g. "(N, H, W, C)".
ConstTensorView view_4d(std::string_view op, std::string_view arg, std::string_view layout,
                        const InputArray& array);

// A float32 buffer of dims' size, 64-byte aligned, that becomes a numpy array by release(). Until
// then it owns its memory (freed if the computation throws). Allocation needs no GIL; release()
// does.
class OutputBuffer {
 public:
  explicit OutputBuffer(const Dims& dims);

  TensorView view() { return {data_.get(), dims_}; }
  float* data() { return data_.get(); }
  int64_t size() const { return num_elements(dims_); }

  // The numpy array of dims `dims` (4-D), or of `size()` elements when `flat`.
  OutputArray release(bool flat = false) &&;

 private:
  // Throws convkit::Error (out of memory) when the byte count overflows size_t, std::bad_alloc when
  // the memory is not there.
  static float* allocate(const Dims& dims);

  struct AlignedDelete {
    void operator()(float* p) const { ::operator delete[](p, kAlignment); }
  };
  // One cache line, one AVX-512 vector: what the kernels' stores like best.
  static constexpr std::align_val_t kAlignment{64};

  Dims dims_;
  std::unique_ptr<float[], AlignedDelete> data_;
};

}  // namespace convkit::python
