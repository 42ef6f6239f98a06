// convkit::Error: the one exception type of the C++ API (DESIGN §6).
#pragma once

#include <stdexcept>
#include <string>

namespace convkit {

enum class ErrorCode {
  kInvalidArgument,     // a parameter out of its range (stride 0, negative pad, null data, ...)
  kShapeMismatch,       // a tensor whose dims differ from what the parameters imply
  kUnsupported,         // the chosen backend cannot run this parameter combination
  kBackendUnavailable,  // an unknown backend name, or one not built into this copy
  kOutOfMemory,         // an allocation failed
};

// The name of a code, e.g. "invalid argument".
const char* error_code_name(ErrorCode code);

// Thrown by every API function on bad input. what() names the operation, the argument, what was
// expected and what was given, e.g.
//   "conv2d_forward: w: expected dims {3, 3, 4, 8} (KH, KW, C_in/groups, C_out), given {3, 3, 4,
//   7}"
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace convkit
