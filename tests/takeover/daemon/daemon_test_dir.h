// A fresh directory for a test's TakeoverDaemon: a 0600 cluster key file (`<dir>/key`, the
// daemon refuses a world-readable one) and room for its incarnation and state files. The test
// removes it (std::filesystem::remove_all) in TearDown.
#ifndef BATON_TESTS_TAKEOVER_DAEMON_DAEMON_TEST_DIR_H_
#define BATON_TESTS_TAKEOVER_DAEMON_DAEMON_TEST_DIR_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace baton::takeover::testing {

// <tmp>/<prefix><pid>, with its key file.
inline std::filesystem::path MakeDaemonTestDir(const std::string& prefix) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream key(dir / "key");
    key << "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
  }
  std::filesystem::permissions(dir / "key", std::filesystem::perms::owner_read |
                                                std::filesystem::perms::owner_write);
  return dir;
}

}  // namespace baton::takeover::testing

#endif  // BATON_TESTS_TAKEOVER_DAEMON_DAEMON_TEST_DIR_H_
