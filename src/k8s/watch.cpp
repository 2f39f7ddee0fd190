#include "k8s/watch.h"

namespace xlb::k8s {

using nlohmann::json;

bool take_lines(std::string& buffer, const std::function<bool(std::string_view line)>& on_line) {
  size_t start = 0;
  for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (!on_line(std::string_view(buffer).substr(start, nl - start))) {
      buffer.erase(0, nl + 1);
      return false;
    }
  }
  buffer.erase(0, start);
  return true;
}

std::string resource_version_of(const json& object) {
  if (!object.is_object() || !object.contains("metadata")) return {};
  const json& meta = object["metadata"];
  if (!meta.is_object() || !meta.contains("resourceVersion") || !meta["resourceVersion"].is_string()) return {};
  return meta["resourceVersion"].get<std::string>();
}

WatchEvent parse_watch_line(std::string_view line) {
  WatchEvent out;
  json event;
  try {
    event = json::parse(line);
  } catch (const json::exception& e) {
    out.problem = std::string("a line that is not JSON: ") + e.what();
    return out;
  }
  out.type = event.is_object() && event.contains("type") && event["type"].is_string()
                 ? event["type"].get<std::string>()
                 : "";
  out.object = event.is_object() && event.contains("object") ? event["object"] : json();
  if (out.type == "ERROR") {
    out.code = out.object.is_object() && out.object.contains("code") && out.object["code"].is_number_integer()
                   ? out.object["code"].get<long>()
                   : 0;
    out.kind = out.code == 410 ? WatchEvent::Kind::gone : WatchEvent::Kind::error;
    return out;
  }
  out.resource_version = resource_version_of(out.object);
  if (out.type == "BOOKMARK") {
    out.kind = WatchEvent::Kind::bookmark;
  } else if (out.type == "ADDED" || out.type == "MODIFIED" || out.type == "DELETED") {
    out.kind = WatchEvent::Kind::object;
  } else {
    out.problem = "an event of unknown type \"" + out.type + "\"";
  }
  return out;
}

}  // namespace xlb::k8s
