// A Kubernetes watch stream (k8s/watch.h, what ApiClient::stream and the Reflector run on): the
// input is the body the API server sends, cut into chunks as the network might cut it. Framing
// must not depend on where the chunks fall and must lose no byte; every line must read as an
// event or as malformed with a reason, never crash or throw.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "k8s/watch.h"

namespace {

using namespace xlb::k8s;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "watch_stream_fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

struct Framed {
  std::vector<std::string> lines;
  std::string rest;
};

// Feeds `stream` in chunks of the given sizes (the last chunk takes what is left).
Framed frame(std::string_view stream, const std::vector<size_t>& chunks) {
  Framed out;
  auto collect = [&](std::string_view line) {
    out.lines.emplace_back(line);
    return true;
  };
  size_t at = 0;
  for (size_t n : chunks) {
    if (at >= stream.size()) break;
    out.rest += stream.substr(at, n);
    at += n;
    take_lines(out.rest, collect);
  }
  out.rest += stream.substr(std::min(at, stream.size()));
  take_lines(out.rest, collect);
  return out;
}

void check_event(std::string_view line) {
  const WatchEvent e = parse_watch_line(line);
  switch (e.kind) {
    case WatchEvent::Kind::object:
      if (e.type != "ADDED" && e.type != "MODIFIED" && e.type != "DELETED") fail("an object event of type", e.type);
      [[fallthrough]];
    case WatchEvent::Kind::bookmark:
      if (e.resource_version != resource_version_of(e.object)) fail("a version not the object's", line);
      break;
    case WatchEvent::Kind::gone:
      if (e.code != 410) fail("gone without 410", line);
      break;
    case WatchEvent::Kind::error:
      (void)e.object.dump();  // the reflector puts the Status in its message
      break;
    case WatchEvent::Kind::malformed:
      if (e.problem.empty()) fail("malformed without a reason", line);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);

  // Chunk sizes from the input's size: the same input always cuts the same way, so a crash replays.
  std::minstd_rand cuts(static_cast<unsigned>(size) + 1);
  std::vector<size_t> chunks;
  for (size_t total = 0; total < size;) chunks.push_back(cuts() % 64 + 1), total += chunks.back();

  const Framed whole = frame(stream, {});
  const Framed cut = frame(stream, chunks);
  if (whole.lines != cut.lines || whole.rest != cut.rest) fail("lines depend on where the chunks fall", stream);

  std::string joined;
  for (const auto& line : whole.lines) {
    if (line.find('\n') != std::string::npos) fail("a line holds a newline", line);
    joined += line + "\n";
    check_event(line);
  }
  if (joined + whole.rest != stream) fail("framing lost or changed bytes", stream);
  return 0;
}
