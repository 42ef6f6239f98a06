// The verbose line of the Highway backend's variant choices (variants.hpp).
#include "backends/highway/common/variants.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/src/verbose.hpp"
#include "convkit/error.hpp"

namespace convkit::internal::highway {

// The level the running call read (no getenv per choice: one-shot calls choose every time).
bool VariantChoiceVerbose() { return call_verbose_level() >= 2; }

void PrintVariantChoice(std::string_view op, std::string_view problem, std::string_view chosen,
                        std::string_view refused) {
  std::string line = "convkit_verbose,highway,";
  line.append(op).append(",").append(problem).append(",").append(chosen);
  if (!refused.empty()) line.append(",refused: ").append(refused);
  line += "\n";
  std::fputs(line.c_str(), stderr);  // one call per line: concurrent lines do not interleave
}

VariantMode ReadVariantMode(const char* env) {
  const char* set = std::getenv(env);
  const std::string value = set == nullptr ? "" : set;
  if (value.empty() || value == "auto") return VariantMode::kAuto;
  if (value == "on") return VariantMode::kOn;
  if (value == "off") return VariantMode::kOff;
  throw Error(ErrorCode::kInvalidArgument,
              std::string(env) + ": expected one of auto, on, off, given '" + value + "'");
}

}  // namespace convkit::internal::highway
