// Links against the installed convkit and runs one plan: exit 0 when the result is right.
#include <cstdio>

#include "convkit/convkit.h"  // the C ABI is installed and linkable too
#include "convkit/convkit.hpp"

int main() {
  // 1x3x3x1 input of ones, 3x3 kernel of ones, pad 1: the centre sees 9 ones, a corner 4; bias 0.5.
  const convkit::Conv2dParams params{
      .kernel_h = 3, .kernel_w = 3, .pad = convkit::Pads::uniform(1)};
  const convkit::Tensor x({1, 3, 3, 1}, 1.0f), w({3, 3, 1, 1}, 1.0f);
  const float b[] = {0.5f};
  const convkit::Conv2d plan(params, x.dims(), w, b);
  convkit::Tensor y(plan.y_dims());
  plan.run(x, y);
  std::printf("consumer: %s centre %g corner %g; C ABI backends %s\n", plan.impl_name().c_str(),
              y(0, 1, 1, 0), y(0, 0, 0, 0), convkit_available_backends());
  return y(0, 1, 1, 0) == 9.5f && y(0, 0, 0, 0) == 4.5f &&
                 convkit_set_num_threads(-1) == CONVKIT_INVALID_ARGUMENT
             ? 0
             : 1;
}
