#include "datapath/state.h"

namespace xlb::datapath {

std::string FrontendKey::to_string() const {
  return model::Frontend{address, port, protocol, model::FrontendKind::vip}.to_string();
}

}  // namespace xlb::datapath
