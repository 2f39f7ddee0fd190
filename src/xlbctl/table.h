// Aligned text tables and the small formats xlbctl's tables share.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xlb::ctl {

// Columns separated by two spaces, each as wide as its widest cell; the last one is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out, const std::string& indent = "") const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "10.0.0.1:80", "[2001:db8::1]:80".
std::string host_port(const std::string& address, uint64_t port);
// A frontend object of the API as "198.18.0.10:80/tcp".
std::string frontend_text(const nlohmann::json& frontend);
// 0.3333 -> "33.3%".
std::string percent(double fraction);
// object[key] when it is an array (an object), else an empty one.
const nlohmann::json& array_at(const nlohmann::json& object, const char* key);
const nlohmann::json& object_at(const nlohmann::json& object, const char* key);
// A JSON string field, or "" when absent or not a string.
std::string text(const nlohmann::json& object, const char* key);
// A JSON number field as text, or "0" when absent.
std::string number(const nlohmann::json& object, const char* key);

}  // namespace xlb::ctl
