// The list of backends and the choice among them (DESIGN §5). The only place that names backends.
#pragma once

#include <functional>
#include <span>
#include <string_view>

#include "api/src/backend.hpp"

namespace convkit::internal {

// Every backend convkit knows, built or not, in auto's order of preference.
std::span<const Backend* const> registry();

// The backend that runs `op`: `requested` if non-empty, else $CONVKIT_BACKEND if set and non-empty,
// else "auto". auto takes the first built backend whose `supports` says yes; an explicit name must
// be known (kBackendUnavailable listing the names otherwise), built (kBackendUnavailable with the
// reason) and support the problem (kUnsupported with the backend's reason).
const Backend& select_backend(std::string_view op, std::string_view requested,
                              const std::function<Support(const Backend&)>& supports);

}  // namespace convkit::internal
