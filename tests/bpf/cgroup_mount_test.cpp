// Finding the cgroup v2 mount in mountinfo text (no root needed).
#include <gtest/gtest.h>

#include "datapath/cgroup.h"

namespace xlb::datapath {
namespace {

TEST(Cgroup2Mount, FoundAmongOtherMounts) {
  const Result<std::filesystem::path> mount = parse_cgroup2_mount(
      "22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
      "30 22 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/systemd rw shared:10 - cgroup cgroup rw,name=systemd\n"
      "41 30 0:38 / /sys/fs/cgroup/unified rw,relatime shared:11 - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(mount.ok()) << mount.error().message;
  EXPECT_EQ(*mount, "/sys/fs/cgroup/unified");
}

TEST(Cgroup2Mount, WithoutOptionalFields) {
  const Result<std::filesystem::path> mount =
      parse_cgroup2_mount("41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw");
  ASSERT_TRUE(mount.ok()) << mount.error().message;
  EXPECT_EQ(*mount, "/sys/fs/cgroup");
}

TEST(Cgroup2Mount, EscapedCharactersInThePath) {
  const Result<std::filesystem::path> mount =
      parse_cgroup2_mount("41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 none rw\n");
  ASSERT_TRUE(mount.ok()) << mount.error().message;
  EXPECT_EQ(*mount, "/mnt/my cgroups");
}

TEST(Cgroup2Mount, NoneSaysWhatToDo) {
  const Result<std::filesystem::path> mount =
      parse_cgroup2_mount("31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  ASSERT_FALSE(mount.ok());
  EXPECT_EQ(mount.error().message,
            "no cgroup v2 file system is mounted (no cgroup2 line in /proc/self/mountinfo); socket-LB needs one: "
            "mount -t cgroup2 none /sys/fs/cgroup, or set cgroup = \"off\"");
}

}  // namespace
}  // namespace xlb::datapath
