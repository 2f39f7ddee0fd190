#include "api/token.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "base/unique_fd.h"

namespace xlb::api {

namespace {

constexpr size_t kTokenBytes = 32;  // 256 bits
constexpr size_t kTokenLength = 2 * kTokenBytes;

bool well_formed(std::string_view token) {
  return token.size() == kTokenLength &&
         token.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Result<std::string> random_token() {
  std::array<unsigned char, kTokenBytes> bytes{};
  size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{std::string("cannot make an API token: getrandom: ") + std::strerror(errno)};
    filled += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += kHex[b >> 4];
    token += kHex[b & 0xf];
  }
  return token;
}

// The token in the file if it is one and only its owner can read it; nullopt otherwise.
std::optional<std::string> existing_token(const std::filesystem::path& path, const Logger& log) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  if ((st.st_mode & 077) != 0) {
    log.warning(path.string() + " was readable by others; replacing the API token");
    return std::nullopt;
  }
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  if (!well_formed(token)) {
    log.warning(path.string() + " does not hold a valid API token; replacing it");
    return std::nullopt;
  }
  return token;
}

Status write_private(const std::filesystem::path& path, const std::string& text) {
  const auto temp = path.string() + ".new";
  ::unlink(temp.c_str());
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return Error{"cannot write " + temp + ": " + std::strerror(errno)};
  const std::string line = text + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd.get()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(temp.c_str());
    return Error{"cannot write " + temp + ": " + why};
  }
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(temp.c_str());
    return Error{"cannot create " + path.string() + ": " + why};
  }
  return {};
}

}  // namespace

Result<std::string> load_or_create_token(const std::filesystem::path& path, const Logger& log) {
  if (auto token = existing_token(path, log)) return *token;
  auto token = random_token();
  if (!token) return token;
  if (auto s = write_private(path, *token); !s) return s.error();
  log.info("wrote a new API token to " + path.string());
  return token;
}

bool bearer_matches(std::string_view header, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
  const std::string_view given = header.substr(kScheme.size());
  // The length is no secret (every token has the same); the bytes are compared without an early exit.
  if (given.size() != token.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < token.size(); ++i)
    difference |= static_cast<unsigned char>(given[i] ^ token[i]);
  return difference == 0;
}

}  // namespace xlb::api
