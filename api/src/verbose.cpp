#include "api/src/verbose.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace convkit::internal {

bool verbose_enabled() { return verbose_level() > 0; }

int verbose_level() {
  const char* env = std::getenv("CONVKIT_VERBOSE");
  if (env == nullptr || *env == '\0' || std::string_view(env) == "0") return 0;
  return std::atoi(env) >= 2 ? 2 : 1;
}

namespace {
// initial-exec: a plain %fs-relative load, where the default model for a shared library calls
// __tls_get_addr (~10 ns, a tenth of a tiny one-shot call). Four bytes of static TLS.
__attribute__((tls_model("initial-exec"))) thread_local int call_level = -1;  // -1: no call
}  // namespace

int call_verbose_level() { return call_level >= 0 ? call_level : verbose_level(); }

CallVerboseScope::CallVerboseScope(int level) : previous_(call_level) { call_level = level; }

CallVerboseScope::~CallVerboseScope() { call_level = previous_; }

void print_verbose(std::string_view op, std::string_view impl, std::string_view problem,
                   Clock::time_point start) {
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  // One fprintf call per line so that lines from concurrent calls do not interleave.
  std::fprintf(stderr, "convkit_verbose,%.*s,%.*s,%.*s,%.4f ms\n", static_cast<int>(op.size()),
               op.data(), static_cast<int>(impl.size()), impl.data(),
               static_cast<int>(problem.size()), problem.data(), ms);
}

}  // namespace convkit::internal
