#include "backends/onednn/onednn_exec.hpp"

#include <cassert>
#include <cstddef>

#include "backends/onednn/onednn_common.hpp"

namespace convkit::internal::onednn {

struct PlannedExec::Slot {
  dnnl::stream stream;
  std::vector<dnnl::memory> bound;  // data handles set by each run
  dnnl::memory scratchpad;          // owns its buffer; empty when the primitive needs none
  std::vector<dnnl_exec_arg_t> args;
};

PlannedExec::PlannedExec(const dnnl::primitive_desc_base& pd, const dnnl::primitive& prim,
                         int num_threads, std::vector<std::pair<int, dnnl::memory::desc>> bound,
                         std::vector<std::pair<int, dnnl::memory>> fixed)
    : prim_(prim),
      num_threads_(num_threads),
      scratchpad_desc_(pd.scratchpad_desc()),
      bound_(std::move(bound)),
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
    for (const auto& [arg, desc] : bound_) {
      slot->bound.emplace_back(desc, Engine(), nullptr);
      slot->args.push_back({arg, slot->bound.back().get()});
    }
    for (const auto& [arg, mem] : fixed_) slot->args.push_back({arg, mem.get()});
    if (scratchpad_desc_.get_size() > 0) {
      slot->scratchpad = dnnl::memory(scratchpad_desc_, Engine());  // oneDNN allocates, aligned
      slot->args.push_back({DNNL_ARG_SCRATCHPAD, slot->scratchpad.get()});
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

void PlannedExec::Run(std::initializer_list<const void*> buffers) const {
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
  const dnnl_status_t status = dnnl_primitive_execute(
      prim_.get(), slot->stream.get(), static_cast<int>(slot->args.size()), slot->args.data());
  if (status != dnnl_success) ThrowFromDnnl("run", dnnl::error(status, "execute"));
}

}  // namespace convkit::internal::onednn
