// The Highway backend's implementation lists (oneDNN's impl-list pattern): per op, an ordered list
// of variants, each of which accepts a problem or refuses it with a short reason; the first to
// accept runs it. The last entry of every list accepts every problem, so a choice always exists.
// With CONVKIT_VERBOSE=2 each choice prints one line on stderr:
//   convkit_verbose,highway,<op>,<problem>,<chosen variant>[,refused: <variant> (<reason>); ...]
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace convkit::internal::highway {

// One entry of an op's list. Query is what the op's choice looks at (the problem and, e.g., whether
// the call is a plan or a one-shot call).
template <class Query>
struct Variant {
  const char* name;
  // Null when the variant runs q; otherwise why not, in a few words ("needs a 3x3 kernel"): a
  // static string, so that choosing allocates nothing unless the choice is printed.
  const char* (*refuses)(const Query& q);
};

// Prints the CONVKIT_VERBOSE=2 line of a choice (see above). `refused` holds "name (reason)" items
// separated by "; ", or is empty.
void PrintVariantChoice(std::string_view op, std::string_view problem, std::string_view chosen,
                        std::string_view refused);

// True when CONVKIT_VERBOSE asks for the choice lines (level 2 or more).
bool VariantChoiceVerbose();

// A variant's switch in the environment (CONVKIT_HIGHWAY_WINOGRAD, CONVKIT_HIGHWAY_BF16): auto
// (also unset or empty) runs it where its own rule says it pays, on wherever it can run, off never.
enum class VariantMode { kAuto, kOn, kOff };

// The mode environment variable `env` sets; any other value throws Error (invalid argument)
// naming the variable. Read at each plan creation and one-shot call.
VariantMode ReadVariantMode(const char* env);

// The index in `list` of the first entry that accepts q (the last one when all refuse: it must
// accept everything). Entry is Variant<Query> or any struct with the same two members (an op's
// list may carry more per entry, e.g. its plan factory). `describe(q)` gives the problem's text
// for the verbose line, and is called only when that line is printed.
template <class Entry, class Query, class Describe>
size_t ChooseVariant(std::string_view op, std::span<const Entry> list, const Query& q,
                     const Describe& describe) {
  const bool verbose = VariantChoiceVerbose();
  std::string refused;
  size_t i = 0;
  for (; i + 1 < list.size(); ++i) {
    const char* reason = list[i].refuses(q);
    if (reason == nullptr) break;
    if (verbose) {
      if (!refused.empty()) refused += "; ";
      refused += std::string(list[i].name) + " (" + reason + ")";
    }
  }
  if (verbose) PrintVariantChoice(op, describe(q), list[i].name, refused);
  return i;
}

}  // namespace convkit::internal::highway
