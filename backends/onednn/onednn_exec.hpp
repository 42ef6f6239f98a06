// Running planned oneDNN primitives: const, thread-safe, without allocating buffers.
#pragma once

#include <initializer_list>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <span>
#include <utility>
#include <vector>

namespace convkit::internal::onednn {

// Where an argument of a step comes from: the buffer Run passes at `index` (bound), a temporary
// each execution slot owns (owned: e.g. a workspace, or dw in oneDNN's layout before its reorder
// to HWIO), or a memory shared by every run (fixed: packed weights, bias).
struct ExecRef {
  enum class Kind { kBound, kOwned, kFixed };
  Kind kind;
  size_t index;
};

// One primitive of a plan, run in order with the others on the same execution slot. `scratchpad`
// is its primitive_desc's scratchpad_desc(); the pd must have been created with
// scratchpad_mode::user.
struct ExecStep {
  dnnl::primitive prim;
  dnnl::memory::desc scratchpad;
  std::vector<std::pair<int, ExecRef>> args;
};

// The primitives created for a plan (one, or a short sequence of steps), with everything a run
// needs already made.
//
// Runs may overlap (a plan's run is const and thread-safe), and oneDNN's user-mode scratchpad must
// not be shared by overlapping executions, so each run borrows an execution slot: a stream, memory
// objects for the per-run buffers (x, y), the owned temporaries and a scratchpad per step. The pool
// starts with one slot, made here, and grows by one slot only when more runs overlap than ever
// before; slots are kept and reused, so a plan run from k threads at once ends up holding k
// scratchpads (a few KiB each for the brgemm convolutions) and allocates nothing once warm.
// Borrowing costs one uncontended mutex lock and unlock. The fixed memories (packed weights, bias)
// are shared read-only by all slots.
//
// The thread count is the one the primitive was created for: oneDNN bakes it into the work split
// (and its primitive cache key), so every run sets it again (ScopedOmpThreads).
class PlannedExec {
 public:
  // `bound`: the arguments whose buffers each run passes, in Run's order. `fixed`: the arguments
  // that never change; PlannedExec keeps the memory objects alive. `pd` must have been created with
  // scratchpad_mode::user.
  PlannedExec(const dnnl::primitive_desc_base& pd, const dnnl::primitive& prim, int num_threads,
              std::vector<std::pair<int, dnnl::memory::desc>> bound,
              std::vector<std::pair<int, dnnl::memory>> fixed);
  // Several steps. `bound`: the descs of the buffers each run passes, in Run's order; `owned`: the
  // descs of each slot's temporaries; `fixed`: memories shared by all runs (kept alive here).
  PlannedExec(std::vector<ExecStep> steps, int num_threads, std::vector<dnnl::memory::desc> bound,
              std::vector<dnnl::memory::desc> owned, std::vector<dnnl::memory> fixed);
  ~PlannedExec();
  PlannedExec(const PlannedExec&) = delete;
  PlannedExec& operator=(const PlannedExec&) = delete;

  // Executes the primitive with bound argument i on buffers[i] (buffers.size() == bound.size()).
  // Thread-safe. Throws convkit::Error if oneDNN fails.
  void Run(std::initializer_list<const void*> buffers) const {
    Run(std::span<const void* const>(buffers.begin(), buffers.size()));
  }
  void Run(std::span<const void* const> buffers) const;

  int num_threads() const { return num_threads_; }

 private:
  struct Slot;
  std::unique_ptr<Slot> MakeSlot() const;
  Slot* Acquire() const;
  void Release(Slot* slot) const;

  std::vector<ExecStep> steps_;
  int num_threads_;
  std::vector<dnnl::memory::desc> bound_;
  std::vector<dnnl::memory::desc> owned_;
  std::vector<dnnl::memory> fixed_;

  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Slot>> slots_;  // every slot made; guarded by mu_
  mutable std::vector<Slot*> free_;  // capacity == slots_.size(), so a release never allocates
};

}  // namespace convkit::internal::onednn
