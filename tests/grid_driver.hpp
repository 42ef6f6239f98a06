// The one grid driver of the suites that run a backend against reference over a list of cases
// (tests/equivalence/, transpose): the loop, the tally of cases run and refused, the failure
// report and the skip when every case was refused (STYLE rule 8).
//
// A backend refusing a case (ErrorCode::kUnsupported) has the case counted and its first case per
// reason printed; a test whose every case is refused is skipped with the reasons. A test stops
// looking after kMaxReportedFailures failed checks.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tests/test_util.hpp"

namespace convkit::test {

// Failing checks reported per test before it stops looking.
constexpr int kMaxReportedFailures = 8;
// Output pre-fills: distinct, so an element neither side writes still shows as a difference.
constexpr float kReferenceFill = 7777.0f;
constexpr float kBackendFill = -9999.0f;

// Counts the cases run and refused, and reports failures up to kMaxReportedFailures.
class Tally {
 public:
  explicit Tally(std::string backend) : backend_(std::move(backend)) {}

  void Refused(const std::string& case_string, const std::string& reason) {
    ++refused_;
    if (reasons_.emplace(reason, case_string).second) {
      std::printf("[ REFUSED  ] %s: %s: %s\n", backend_.c_str(), case_string.c_str(),
                  reason.c_str());
    }
  }
  void Ran() { ++ran_; }
  // Records a failed check; true when enough failures were reported to stop.
  bool Check(const ::testing::AssertionResult& result) {
    if (result) return false;
    ADD_FAILURE() << result.message();
    return ++failures_ >= kMaxReportedFailures;
  }
  int ran() const { return ran_; }
  int refused() const { return refused_; }
  std::string Summary() const {
    std::string s = backend_ + " ran " + std::to_string(ran_) + " cases and refused " +
                    std::to_string(refused_) + ", for " + std::to_string(reasons_.size()) +
                    " distinct reasons:";
    for (const auto& [reason, example] : reasons_) s += "\n  " + reason + " (e.g. " + example + ")";
    return s;
  }

 private:
  std::string backend_;
  int ran_ = 0;
  int refused_ = 0;
  int failures_ = 0;
  std::map<std::string, std::string> reasons_;
};

// What a case's check tells the driver: the next case, or stop (enough failures reported). A part
// of a case's check returns kGoOn when the case's next part should run (the driver reads it as
// kNext).
enum class GridStep { kNext, kStop, kGoOn };

// Ends a grid test: skipped when every case was refused, with the reasons; otherwise the refusals
// are printed (and recorded as a test property) and the test stands on the cases it ran.
inline void FinishGrid(const Tally& tally) {
  if (tally.refused() > 0) ::testing::Test::RecordProperty("refused", tally.Summary());
  if (tally.ran() == 0) GTEST_SKIP() << tally.Summary();
  if (tally.refused() > 0) std::printf("%s\n", tally.Summary().c_str());
}

// The one grid driver: `check(index, item, tally)` for every item in order, until one returns
// GridStep::kStop; then FinishGrid. Returns the number of cases run. Call it from a test body (it
// may skip the test).
template <typename Item, typename Check>
int RunGrid(const std::string& backend, const std::vector<Item>& items, const Check& check) {
  Tally tally(backend);
  for (size_t i = 0; i < items.size(); ++i) {
    if (check(static_cast<int>(i), items[i], tally) == GridStep::kStop) break;
  }
  FinishGrid(tally);
  return tally.ran();
}

// Success when `isa` is empty or the plan's "backend:variant:isa" ends with it: a pinned Highway
// target really ran.
inline ::testing::AssertionResult ImplIsOnIsa(std::string_view case_name, const std::string& impl,
                                              std::string_view isa) {
  if (isa.empty() || impl.ends_with(":" + std::string(isa))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << case_name << ": plan runs on " << impl << ", not on the pinned target " << isa;
}

// A plan refusing what the one-shot call of the same problem ran: the two choose the same way, so
// this is a failure, not a refusal.
inline ::testing::AssertionResult PlanRefusal(std::string_view case_name, const std::string& why) {
  return ::testing::AssertionFailure()
         << case_name << ": the one-shot call ran, but its plan was refused: " << why;
}

// How a case runs on the backend: `one_shot(out)` writes the one-shot result; `plan(out,
// out_again)` creates a plan, runs it into both and returns its impl_name().
struct BackendRuns {
  std::function<void(Tensor&)> one_shot;
  std::function<std::string(Tensor&, Tensor&)> plan;
};

// The backend's result of one case one-shot, then through a plan run twice, each against
// `expected` (`what`: "y", "dx"; outputs pre-filled with kBackendFill); the plan must run on
// `isa`. A one-shot refusal is counted and ends the case; a plan refusal then is a failure.
inline GridStep CheckOneShotAndPlan(Tally& tally, const std::string& cs, const std::string& what,
                                    const Tensor& expected, std::string_view isa,
                                    const BackendRuns& runs, Tolerance tol = Tolerance::Exact()) {
  Tensor out(expected.dims(), kBackendFill);
  if (auto why = RefusalOf([&] { runs.one_shot(out); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  if (tally.Check(CompareTensors(cs, what + " (one-shot)", expected, out, tol))) {
    return GridStep::kStop;
  }
  std::string impl;
  Tensor out_plan(expected.dims(), kBackendFill), out_plan_again(expected.dims(), kBackendFill);
  if (auto why = RefusalOf([&] { impl = runs.plan(out_plan, out_plan_again); })) {
    return tally.Check(PlanRefusal(cs, *why)) ? GridStep::kStop : GridStep::kNext;
  }
  if (tally.Check(ImplIsOnIsa(cs, impl, isa)) ||
      tally.Check(CompareTensors(cs, what + " (plan)", expected, out_plan, tol)) ||
      tally.Check(
          CompareTensors(cs, what + " (plan, second run)", expected, out_plan_again, tol))) {
    return GridStep::kStop;
  }
  return GridStep::kNext;
}

}  // namespace convkit::test
