#include "datapath/errno_error.h"

#include <cstring>
#include <string>

namespace xlb::datapath {

Error errno_error(std::string_view what, int err, std::string_view hint) {
  std::string message{what};
  message += ": ";
  message += std::strerror(err);
  if (!hint.empty()) {
    message += " (";
    message += hint;
    message += ")";
  }
  return Error{std::move(message)};
}

Error prefixed(std::string_view what, const Error& inner) {
  return Error{std::string(what) + ": " + inner.message};
}

}  // namespace xlb::datapath
