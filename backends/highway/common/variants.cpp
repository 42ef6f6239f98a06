// The verbose line of the Highway backend's variant choices (variants.hpp).
#include "backends/highway/common/variants.hpp"

#include <cstdio>
#include <string>
#include <string_view>

#include "api/src/verbose.hpp"

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

}  // namespace convkit::internal::highway
