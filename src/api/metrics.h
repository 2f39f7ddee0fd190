// GET /metrics: the snapshot in Prometheus' text exposition format (version 0.0.4). Every name
// starts with xlb_; labels are service, backend, family, state and reason.
#pragma once

#include <string>
#include <string_view>

#include "api/provider.h"

namespace xlb::api {

std::string render_metrics(const Snapshot&);

// A label value with \, " and newline escaped, as the format requires.
std::string escape_label_value(std::string_view);

}  // namespace xlb::api
