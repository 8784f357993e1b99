// Starts a test's server process with stdout and stderr appended to a log
// file, so a failing test can point at the server's own words.
#ifndef BATON_TESTS_TESTING_SPAWN_H_
#define BATON_TESTS_TESTING_SPAWN_H_

#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>

#include <string>
#include <vector>

extern char** environ;

namespace baton::testing {

// posix_spawn of args[0] with `args`; returns 0 and sets *pid, or the errno.
inline int SpawnWithLog(std::vector<std::string> args, const std::string& log,
                        pid_t* pid) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

}  // namespace baton::testing

#endif  // BATON_TESTS_TESTING_SPAWN_H_
