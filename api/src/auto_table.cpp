#include "api/src/auto_table.hpp"

#include <algorithm>
#include <initializer_list>
#include <sstream>
#include <string>

#include "api/src/cpu.hpp"

namespace convkit::internal {

namespace {

std::string_view op_name(AutoOp op) {
  switch (op) {
    case AutoOp::kConvFwd:
      return "conv_fwd";
    case AutoOp::kConvBwdData:
      return "conv_bwd_data";
    case AutoOp::kConvBwdWeights:
      return "conv_bwd_weights";
    case AutoOp::kPoolFwdMax:
      return "pool_fwd_max";
    case AutoOp::kPoolFwdAvg:
      return "pool_fwd_avg";
    case AutoOp::kPoolBwdMax:
      return "pool_bwd_max";
    case AutoOp::kPoolBwdAvg:
      return "pool_bwd_avg";
  }
  return "?";
}

std::string_view groups_name(GroupsClass g) {
  switch (g) {
    case GroupsClass::kAny:
      return "any";
    case GroupsClass::kDense:
      return "dense";
    case GroupsClass::kGrouped:
      return "grouped";
    case GroupsClass::kDepthwise:
      return "depthwise";
  }
  return "?";
}

AutoOp conv_op(ConvPass pass) {
  switch (pass) {
    case ConvPass::kForward:
      return AutoOp::kConvFwd;
    case ConvPass::kBackwardData:
      return AutoOp::kConvBwdData;
    case ConvPass::kBackwardWeights:
      return AutoOp::kConvBwdWeights;
  }
  return AutoOp::kConvFwd;
}

// The product of non-negative extents, saturated at kNoLimit: validated problems may have extents
// whose products overflow (huge strides or pads leave few outputs), and a feature only needs to be
// "very large" there.
int64_t product(std::initializer_list<int64_t> factors) {
  int64_t result = 1;
  for (const int64_t factor : factors) {
    if (__builtin_mul_overflow(result, factor, &result)) return kNoLimit;
  }
  return result;
}

}  // namespace

std::string AutoFeatures::to_string() const {
  std::ostringstream out;
  out << op_name(op) << " k" << kernel << ' ' << groups_name(groups) << " ic" << ic << " oc" << oc
      << " spatial" << spatial << " n" << batch << " s" << stride << " t" << threads << " work"
      << work;
  if (kernel_min != kernel) out << " kmin" << kernel_min;
  if (call == CallKind::kOneShot) out << " one-shot";
  return out.str();
}

AutoFeatures conv2d_features(const Conv2dProblem& p, ConvPass pass, int threads, CallKind call) {
  AutoFeatures f;
  f.op = conv_op(pass);
  f.kernel = std::max(p.kh, p.kw);
  f.kernel_min = std::min(p.kh, p.kw);
  f.groups = p.groups == 1   ? GroupsClass::kDense
             : p.depthwise() ? GroupsClass::kDepthwise
                             : GroupsClass::kGrouped;
  f.ic = p.ic;
  f.oc = p.oc;
  f.spatial = product({p.oh, p.ow});
  f.batch = p.n;
  f.stride = std::max(p.stride_h, p.stride_w);
  f.threads = threads;
  f.work = product({p.n, f.spatial, p.oc, p.kh, p.kw, p.ic_per_group()});
  f.call = call;
  return f;
}

AutoFeatures pool2d_features(const Pool2dProblem& p, PoolPass pass, int threads, CallKind call) {
  AutoFeatures f;
  const bool max = p.mode == PoolMode::kMax;
  f.op = pass == PoolPass::kForward ? (max ? AutoOp::kPoolFwdMax : AutoOp::kPoolFwdAvg)
                                    : (max ? AutoOp::kPoolBwdMax : AutoOp::kPoolBwdAvg);
  f.kernel = std::max(p.kh, p.kw);
  f.kernel_min = std::min(p.kh, p.kw);
  f.groups = GroupsClass::kDense;
  f.ic = f.oc = p.c;
  f.spatial = product({p.oh, p.ow});
  f.batch = p.n;
  f.stride = std::max(p.stride_h, p.stride_w);
  f.threads = threads;
  f.work = product({p.n, f.spatial, p.c, p.kh, p.kw});
  f.call = call;
  return f;
}

bool AutoRule::matches(const AutoFeatures& f) const {
  return f.op == op && f.call == call && kernel.contains(f.kernel) &&
         kernel_min.contains(f.kernel_min) && (groups == GroupsClass::kAny || groups == f.groups) &&
         ic.contains(f.ic) && oc.contains(f.oc) && spatial.contains(f.spatial) &&
         batch.contains(f.batch) && stride.contains(f.stride) && threads.contains(f.threads) &&
         work.contains(f.work);
}

const AutoTable& auto_table_for(std::string_view vendor) {
  const std::span<const AutoTable> tables = auto_tables();
  const auto own = std::find_if(tables.begin(), tables.end(),
                                [&](const AutoTable& table) { return table.vendor == vendor; });
  return own != tables.end() ? *own : tables.front();
}

namespace {

// This CPU's table, looked up once.
const AutoTable& own_table() {
  static const AutoTable& table = auto_table_for(cpu_vendor());
  return table;
}

}  // namespace

std::span<const AutoRule> auto_rules() { return own_table().rules; }

std::string_view auto_rules_source() { return own_table().source; }

const AutoRule* match_auto_rule(const AutoFeatures& f) {
  for (const AutoRule& rule : auto_rules()) {
    if (rule.matches(f)) return &rule;
  }
  return nullptr;
}

}  // namespace convkit::internal
