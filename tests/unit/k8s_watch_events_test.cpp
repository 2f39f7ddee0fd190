// A watch stream's lines and events without a server (k8s/watch.h); the reflector's behaviour on
// a real stream is in k8s_watch_test.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "k8s/watch.h"

namespace xlb::k8s {
namespace {

// Lines come out whole and in order wherever the chunks cut them.
TEST(WatchLines, ChunksCutAnywhere) {
  const std::string stream = "{\"a\":1}\n\n{\"b\":2}\n{\"c\"";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string buffer;
    std::vector<std::string> lines;
    auto collect = [&](std::string_view line) {
      lines.emplace_back(line);
      return true;
    };
    buffer += stream.substr(0, cut);
    ASSERT_TRUE(take_lines(buffer, collect));
    buffer += stream.substr(cut);
    ASSERT_TRUE(take_lines(buffer, collect));
    EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "", "{\"b\":2}"})) << "cut at " << cut;
    EXPECT_EQ(buffer, "{\"c\"");
  }
}

TEST(WatchLines, StopsWhenTheHandlerSaysSo) {
  std::string buffer = "one\ntwo\nthree\n";
  std::vector<std::string> lines;
  EXPECT_FALSE(take_lines(buffer, [&](std::string_view line) {
    lines.emplace_back(line);
    return line != "two";
  }));
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(buffer, "three\n");
}

TEST(WatchEvents, ObjectsBookmarksAndErrors) {
  auto added = parse_watch_line(R"({"type":"ADDED","object":{"kind":"Service","metadata":{"resourceVersion":"7"}}})");
  EXPECT_EQ(added.kind, WatchEvent::Kind::object);
  EXPECT_EQ(added.type, "ADDED");
  EXPECT_EQ(added.resource_version, "7");
  EXPECT_EQ(added.object["kind"], "Service");

  auto bookmark = parse_watch_line(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})");
  EXPECT_EQ(bookmark.kind, WatchEvent::Kind::bookmark);
  EXPECT_EQ(bookmark.resource_version, "9");

  auto gone = parse_watch_line(R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})");
  EXPECT_EQ(gone.kind, WatchEvent::Kind::gone);

  auto error = parse_watch_line(R"({"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd"}})");
  EXPECT_EQ(error.kind, WatchEvent::Kind::error);
  EXPECT_EQ(error.code, 500);
}

TEST(WatchEvents, MalformedLinesSayWhy) {
  auto not_json = parse_watch_line("{\"type\":");
  EXPECT_EQ(not_json.kind, WatchEvent::Kind::malformed);
  EXPECT_TRUE(not_json.problem.starts_with("a line that is not JSON: ")) << not_json.problem;

  auto unknown = parse_watch_line(R"({"type":"RENAMED","object":{}})");
  EXPECT_EQ(unknown.kind, WatchEvent::Kind::malformed);
  EXPECT_EQ(unknown.problem, "an event of unknown type \"RENAMED\"");

  EXPECT_EQ(parse_watch_line("[1,2]").problem, "an event of unknown type \"\"");
}

}  // namespace
}  // namespace xlb::k8s
