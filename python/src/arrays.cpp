#include "python/src/arrays.hpp"

#include <cstdint>
#include <string>

#include "convkit/error.hpp"

namespace nb = nanobind;

namespace convkit::python {

namespace {

// "(2, 5, 7)", as Python prints a shape.
std::string shape_string(const InputArray& array) {
  std::string text = "(";
  for (size_t i = 0; i < array.ndim(); ++i) {
    text.append(i == 0 ? "" : ", ").append(std::to_string(array.shape(i)));
  }
  return text.append(array.ndim() == 1 ? ",)" : ")");
}

}  // namespace

float* OutputBuffer::allocate(const Dims& dims) {
  const int64_t count = num_elements(dims);
  if (static_cast<uint64_t>(count) > SIZE_MAX / sizeof(float)) {
    throw Error(ErrorCode::kOutOfMemory,
                "output of dims " + to_string(dims) + ": more bytes than size_t counts");
  }
  return static_cast<float*>(
      ::operator new[](static_cast<size_t>(count) * sizeof(float), kAlignment));
}

ConstTensorView view_4d(std::string_view op, std::string_view arg, std::string_view layout,
                        const InputArray& array) {
  if (array.ndim() != 4) {
    std::string message;
    message.append(op).append(": ").append(arg).append(": expected a 4-D array ");
    message.append(layout).append(", given shape ").append(shape_string(array));
    throw Error(ErrorCode::kShapeMismatch, message);
  }
  const Dims dims = {static_cast<int64_t>(array.shape(0)), static_cast<int64_t>(array.shape(1)),
                     static_cast<int64_t>(array.shape(2)), static_cast<int64_t>(array.shape(3))};
  return {array.data(), dims};
}

OutputBuffer::OutputBuffer(const Dims& dims) : dims_(dims), data_(allocate(dims)) {}

OutputArray OutputBuffer::release(bool flat) && {
  const int64_t count = size();
  float* data = data_.get();
  nb::capsule owner(data, [](void* p) noexcept { AlignedDelete()(static_cast<float*>(p)); });
  data_.release();  // Now owned by the capsule.
  if (flat) return OutputArray(data, {static_cast<size_t>(count)}, owner);
  return OutputArray(data,
                     {static_cast<size_t>(dims_[0]), static_cast<size_t>(dims_[1]),
                      static_cast<size_t>(dims_[2]), static_cast<size_t>(dims_[3])},
                     owner);
}

}  // namespace convkit::python
