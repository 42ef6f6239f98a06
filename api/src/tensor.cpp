#include "convkit/tensor.hpp"

#include "convkit/error.hpp"

namespace convkit {

int64_t num_elements(const Dims& dims) {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "num_elements: dims: expected extents >= 0, given " + to_string(dims));
    }
    if (__builtin_mul_overflow(count, d, &count)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "num_elements: dims: expected an element count that fits in int64, given " +
                      to_string(dims) + ", whose product overflows");
    }
  }
  return count;
}

}  // namespace convkit
