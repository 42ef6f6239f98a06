// The highway backend when convkit is configured with CONVKIT_WITH_HIGHWAY=OFF: it still answers,
// with the reason it cannot run anything.
#include "api/src/backend.hpp"

namespace convkit::internal {

const Backend& highway_backend() {
  static const NotBuiltBackend backend("highway",
                                       "not built, because convkit was configured with "
                                       "CONVKIT_WITH_HIGHWAY=OFF");
  return backend;
}

}  // namespace convkit::internal
