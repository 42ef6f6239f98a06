// The onednn backend when convkit is configured with CONVKIT_WITH_ONEDNN=OFF: it still answers,
// with the reason it cannot run anything.
#include "api/src/backend.hpp"

namespace convkit::internal {

const Backend& onednn_backend() {
  static const NotBuiltBackend backend("onednn",
                                       "not built, because convkit was configured with "
                                       "CONVKIT_WITH_ONEDNN=OFF");
  return backend;
}

}  // namespace convkit::internal
