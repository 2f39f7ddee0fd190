#include "xlbctl/settings.h"

#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace xlb::ctl {

std::string api_url(std::string text) {
  if (text.find("://") == std::string::npos) text = "http://" + text;
  while (text.ends_with('/')) text.pop_back();
  for (const auto& [wildcard, loopback] : {std::pair{"//0.0.0.0:", "//127.0.0.1:"}, std::pair{"//[::]:", "//[::1]:"}})
    if (const size_t at = text.find(wildcard); at != std::string::npos)
      text.replace(at, std::strlen(wildcard), loopback);
  return text;
}

std::string api_url_from_config(const std::filesystem::path& config) {
  std::ifstream in(config);
  if (!in) return api_url(kDefaultListen);
  try {
    const toml::table table = toml::parse(in, config.string());
    const auto listen = table["api"]["listen"].value<std::string>();
    if (!listen || listen->empty() || *listen == "off") return api_url(kDefaultListen);
    return api_url(*listen);
  } catch (const toml::parse_error&) {
    return api_url(kDefaultListen);  // xlbd refuses such a config too; `xlbctl validate` says why
  }
}

Result<std::string> read_token(const std::filesystem::path& state_dir) {
  const auto path = state_dir / "api.token";
  std::ifstream in(path);
  if (!in) {
    return Error{"cannot read the API token " + path.string() + ": " + std::strerror(errno) +
                 "; writes need root, the user xlbd runs as (sudo xlbctl ...), or --state-dir for another xlbd"};
  }
  std::string token;
  std::getline(in, token);
  if (token.empty()) return Error{"the API token file " + path.string() + " is empty; restarting xlbd writes a new one"};
  return token;
}

}  // namespace xlb::ctl
