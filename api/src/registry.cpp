#include "api/src/registry.hpp"

#include <cstdlib>
#include <string>

#include "api/src/validate.hpp"

namespace convkit::internal {

// Each backends/<name>/ folder defines one of these: the real backend or its "not built" stub.
const Backend& highway_backend();
const Backend& onednn_backend();
const Backend& reference_backend();

std::span<const Backend* const> registry() {
  static const Backend* const backends[kRegisteredBackends] = {
      &highway_backend(), &onednn_backend(), &reference_backend()};
  return backends;
}

namespace {

// "auto, highway, reference": the names a caller may give in this copy.
std::string available_names() {
  std::string names = "auto";
  for (const Backend* backend : registry()) {
    if (backend->not_built_reason().empty()) names.append(", ").append(backend->name());
  }
  return names;
}

}  // namespace

const Backend* named_backend(std::string_view op, std::string_view requested,
                             std::string_view* arg) {
  std::string_view name = requested;
  *arg = "backend";
  if (name.empty()) {
    const char* env = std::getenv("CONVKIT_BACKEND");
    if (env != nullptr && *env != '\0') {
      name = env;
      *arg = "backend (from CONVKIT_BACKEND)";
    }
  }
  if (name.empty() || name == "auto") return nullptr;

  for (const Backend* backend : registry()) {
    if (backend->name() != name) continue;
    if (!backend->not_built_reason().empty()) {
      fail(ErrorCode::kBackendUnavailable, op, *arg, "one of " + available_names(),
           "'" + std::string(name) + "', which is " + std::string(backend->not_built_reason()));
    }
    return backend;
  }
  fail(ErrorCode::kBackendUnavailable, op, *arg, "one of " + available_names(),
       "'" + std::string(name) + "'");
}

bool auto_requested(std::string_view op, std::string_view requested) {
  std::string_view arg;
  return named_backend(op, requested, &arg) == nullptr;
}

void check_named_support(std::string_view op, std::string_view arg, const Backend& backend,
                         const Support& support) {
  if (support.ok) return;
  fail(ErrorCode::kUnsupported, op, arg, "a backend that runs this problem",
       "'" + std::string(backend.name()) + "', which refuses it: " + support.reason);
}

const Backend& select_backend(std::string_view op, std::string_view requested,
                              const std::function<Support(const Backend&)>& supports) {
  std::string_view arg;
  if (const Backend* named = named_backend(op, requested, &arg)) {
    check_named_support(op, arg, *named, supports(*named));
    return *named;
  }
  std::string refusals;
  for (const Backend* backend : registry()) {
    if (!backend->not_built_reason().empty()) continue;
    const Support support = supports(*backend);
    if (support.ok) return *backend;
    refusals.append(refusals.empty() ? "" : "; ").append(support.reason);
  }
  fail(ErrorCode::kUnsupported, op, "backend", "a built backend that runs this problem",
       "auto, refused by every backend: " + refusals);
}

}  // namespace convkit::internal
