// The list of backends and the choice among them (DESIGN §5). The only place that names backends.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string_view>

#include "api/src/backend.hpp"

namespace convkit::internal {

// How many backends registry() lists (its array is declared with this size, so adding one
// without raising it fails to compile).
inline constexpr size_t kRegisteredBackends = 3;

// Every backend convkit knows, built or not, in the order auto tries them when its table has no
// preference (our own fast path, the industry anchor, the ground truth).
std::span<const Backend* const> registry();

// The backend a call names: `requested` if non-empty, else $CONVKIT_BACKEND if set and non-empty;
// null for "auto" (or nothing named). A name must be known and built: kBackendUnavailable listing
// the names available otherwise. *arg is set to the argument name errors should cite.
const Backend* named_backend(std::string_view op, std::string_view requested,
                             std::string_view* arg);

// Whether the call leaves the choice to auto (named_backend returns null); the same errors.
bool auto_requested(std::string_view op, std::string_view requested);

// An explicitly named backend must support the problem: kUnsupported with its reason otherwise.
void check_named_support(std::string_view op, std::string_view arg, const Backend& backend,
                         const Support& support);

// For call sites that have no problem features to give auto's table: the named backend, checked,
// or under auto the first built backend whose `supports` says yes (kUnsupported listing every
// reason when none does). Call sites with a problem use run_on_backend (auto_select.hpp) instead.
const Backend& select_backend(std::string_view op, std::string_view requested,
                              const std::function<Support(const Backend&)>& supports);

}  // namespace convkit::internal
