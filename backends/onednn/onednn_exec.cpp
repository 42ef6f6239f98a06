#include "backends/onednn/onednn_exec.hpp"

#include <cassert>
#include <cstddef>

#include "backends/onednn/onednn_common.hpp"

namespace convkit::internal::onednn {

struct PlannedExec::Slot {
  dnnl::stream stream;
  std::vector<dnnl::memory> bound;                 // data handles set by each run
  std::vector<dnnl::memory> owned;                 // own their buffers
  std::vector<dnnl::memory> scratchpads;           // per step; empty when it needs none
  std::vector<std::vector<dnnl_exec_arg_t>> args;  // per step
};

namespace {

// The single step of the one-primitive constructor: bound argument i is Run's buffer i.
std::vector<ExecStep> OneStep(const dnnl::primitive_desc_base& pd, const dnnl::primitive& prim,
                              const std::vector<std::pair<int, dnnl::memory::desc>>& bound,
                              const std::vector<std::pair<int, dnnl::memory>>& fixed) {
  ExecStep step{prim, pd.scratchpad_desc(), {}};
  for (size_t i = 0; i < bound.size(); ++i) {
    step.args.push_back({bound[i].first, {ExecRef::Kind::kBound, i}});
  }
  for (size_t i = 0; i < fixed.size(); ++i) {
    step.args.push_back({fixed[i].first, {ExecRef::Kind::kFixed, i}});
  }
  return {std::move(step)};
}

template <typename Pair>
auto Seconds(const std::vector<Pair>& pairs) {
  std::vector<typename Pair::second_type> seconds;
  for (const Pair& pair : pairs) seconds.push_back(pair.second);
  return seconds;
}

}  // namespace

PlannedExec::PlannedExec(const dnnl::primitive_desc_base& pd, const dnnl::primitive& prim,
                         int num_threads, std::vector<std::pair<int, dnnl::memory::desc>> bound,
                         std::vector<std::pair<int, dnnl::memory>> fixed)
    : PlannedExec(OneStep(pd, prim, bound, fixed), num_threads, Seconds(bound), {},
                  Seconds(fixed)) {}

PlannedExec::PlannedExec(std::vector<ExecStep> steps, int num_threads,
                         std::vector<dnnl::memory::desc> bound,
                         std::vector<dnnl::memory::desc> owned, std::vector<dnnl::memory> fixed)
    : steps_(std::move(steps)),
      num_threads_(num_threads),
      bound_(std::move(bound)),
      owned_(std::move(owned)),
      fixed_(std::move(fixed)) {
  slots_.push_back(MakeSlot());
  free_.reserve(1);
  free_.push_back(slots_.back().get());
}

PlannedExec::~PlannedExec() = default;

std::unique_ptr<PlannedExec::Slot> PlannedExec::MakeSlot() const {
  return TranslateErrors("plan execution slot", [&] {
    auto slot = std::make_unique<Slot>();
    slot->stream = dnnl::stream(Engine());
    for (const dnnl::memory::desc& desc : bound_) slot->bound.emplace_back(desc, Engine(), nullptr);
    for (const dnnl::memory::desc& desc : owned_) slot->owned.emplace_back(desc, Engine());
    for (const ExecStep& step : steps_) {
      std::vector<dnnl_exec_arg_t>& args = slot->args.emplace_back();
      for (const auto& [arg, ref] : step.args) {
        const dnnl::memory& mem = ref.kind == ExecRef::Kind::kBound   ? slot->bound[ref.index]
                                  : ref.kind == ExecRef::Kind::kOwned ? slot->owned[ref.index]
                                                                      : fixed_[ref.index];
        args.push_back({arg, mem.get()});
      }
      dnnl::memory& scratchpad = slot->scratchpads.emplace_back();
      if (step.scratchpad.get_size() > 0) {
        scratchpad = dnnl::memory(step.scratchpad, Engine());  // oneDNN allocates, aligned
        args.push_back({DNNL_ARG_SCRATCHPAD, scratchpad.get()});
      }
    }
    return slot;
  });
}

PlannedExec::Slot* PlannedExec::Acquire() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      Slot* slot = free_.back();
      free_.pop_back();
      return slot;
    }
  }
  // More runs overlap than ever before: make one more slot, outside the lock.
  std::unique_ptr<Slot> fresh = MakeSlot();
  std::lock_guard<std::mutex> lock(mu_);
  slots_.push_back(std::move(fresh));
  free_.reserve(slots_.size());
  return slots_.back().get();
}

void PlannedExec::Release(Slot* slot) const {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(slot);  // within the reserved capacity
}

void PlannedExec::Run(std::span<const void* const> buffers) const {
  assert(buffers.size() == bound_.size());
  Slot* slot = Acquire();
  struct Releaser {
    const PlannedExec* exec;
    Slot* slot;
    ~Releaser() { exec->Release(slot); }
  } releaser{this, slot};

  size_t i = 0;
  for (const void* buffer : buffers) {
    dnnl_status_t status =
        dnnl_memory_set_data_handle_v2(slot->bound[i++].get(), const_cast<void*>(buffer), nullptr);
    if (status != dnnl_success) ThrowFromDnnl("run", dnnl::error(status, "set_data_handle"));
  }
  ScopedOmpThreads threads(num_threads_);
  for (size_t s = 0; s < steps_.size(); ++s) {
    std::vector<dnnl_exec_arg_t>& args = slot->args[s];
    const dnnl_status_t status = dnnl_primitive_execute(steps_[s].prim.get(), slot->stream.get(),
                                                        static_cast<int>(args.size()), args.data());
    if (status != dnnl_success) ThrowFromDnnl("run", dnnl::error(status, "execute"));
  }
}

}  // namespace convkit::internal::onednn
