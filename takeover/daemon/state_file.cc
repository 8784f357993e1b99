#include "takeover/daemon/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/errno_status.h"

namespace baton::takeover {
namespace {

// Version 2 adds the membership ballots; version 1 files (without them) are still read.
constexpr absl::string_view kHeader = "baton-takeoverd-state 2";
constexpr absl::string_view kHeaderV1 = "baton-takeoverd-state 1";

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("corrupt state file: ", what));
}

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err) {
  return baton::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

// "members 1 2 3" -> {1, 2, 3}; the keyword must match.
absl::Status ParseIds(absl::string_view line, absl::string_view keyword, std::vector<NodeId>& out) {
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (f.empty() || f[0] != keyword) return Corrupt(absl::StrCat("expected '", keyword, "'"));
  for (size_t i = 1; i < f.size(); ++i) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(f[i], &id) || id == kNoNode) {
      return Corrupt(absl::StrCat("bad id '", f[i], "' in ", keyword));
    }
    out.push_back(id);
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodePersistentState(const PersistentState& state) {
  std::string body = absl::StrCat(kHeader, "\nmembership ", state.membership.version, "\nmembers");
  for (NodeId id : state.membership.members) absl::StrAppend(&body, " ", id);
  absl::StrAppend(&body, "\nold_members");
  for (NodeId id : state.membership.old_members) absl::StrAppend(&body, " ", id);
  absl::StrAppend(&body, "\nepochs");
  for (size_t i = 0; i < state.epochs.size(); ++i) {
    const NodeId owner = i < state.epoch_owners.size() ? state.epoch_owners[i] : kNoNode;
    absl::StrAppend(&body, " ", state.epochs[i], ":", owner);
  }
  const Membership& m = state.membership;
  absl::StrAppend(&body, "\nballots ", m.promised.round, ":", m.promised.node, " ",
                  m.accepted.round, ":", m.accepted.node, "\n");
  char sum[17];
  std::snprintf(sum, sizeof sum, "%016" PRIx64, Fnv1a(body));
  return absl::StrCat(body, "checksum ", sum, "\n");
}

absl::StatusOr<PersistentState> DecodePersistentState(std::string_view text_in) {
  const absl::string_view text(text_in.data(), text_in.size());
  const size_t sum_at = text.rfind("checksum ");
  if (sum_at == absl::string_view::npos || (sum_at != 0 && text[sum_at - 1] != '\n')) {
    return Corrupt("no checksum line (truncated?)");
  }
  absl::string_view body = text.substr(0, sum_at);
  absl::string_view sum_text = text.substr(sum_at + 9);
  if (!sum_text.empty() && sum_text.back() == '\n') sum_text.remove_suffix(1);
  uint64_t sum = 0;
  if (sum_text.size() != 16 || !absl::SimpleHexAtoi(sum_text, &sum)) return Corrupt("bad checksum line");
  if (sum != Fnv1a(body)) return Corrupt("checksum mismatch");

  std::vector<absl::string_view> lines = absl::StrSplit(body, '\n', absl::SkipEmpty());
  const bool v1 = !lines.empty() && lines[0] == kHeaderV1;
  if (!lines.empty() && lines[0] != kHeader && !v1) {
    return Corrupt(absl::StrCat("unknown header '", lines[0], "'"));
  }
  const size_t records = v1 ? 5 : 6;
  if (lines.size() != records) {
    return Corrupt(absl::StrCat("expected ", records, " records, found ", lines.size()));
  }
  PersistentState st;
  {
    std::vector<absl::string_view> f = absl::StrSplit(lines[1], ' ', absl::SkipEmpty());
    if (f.size() != 2 || f[0] != "membership" || !absl::SimpleAtoi(f[1], &st.membership.version)) {
      return Corrupt("bad membership line");
    }
  }
  if (absl::Status s = ParseIds(lines[2], "members", st.membership.members); !s.ok()) return s;
  if (absl::Status s = ParseIds(lines[3], "old_members", st.membership.old_members); !s.ok()) return s;
  std::vector<absl::string_view> f = absl::StrSplit(lines[4], ' ', absl::SkipEmpty());
  if (f.empty() || f[0] != "epochs") return Corrupt("expected 'epochs'");
  for (size_t i = 1; i < f.size(); ++i) {
    std::vector<absl::string_view> eo = absl::StrSplit(f[i], ':');
    uint64_t epoch = 0;
    uint32_t owner = 0;
    if (eo.size() != 2 || !absl::SimpleAtoi(eo[0], &epoch) || !absl::SimpleAtoi(eo[1], &owner)) {
      return Corrupt(absl::StrCat("bad epoch '", f[i], "'"));
    }
    st.epochs.push_back(epoch);
    st.epoch_owners.push_back(owner);
  }
  if (!v1) {
    std::vector<absl::string_view> b = absl::StrSplit(lines[5], ' ', absl::SkipEmpty());
    Ballot* ballots[] = {&st.membership.promised, &st.membership.accepted};
    if (b.size() != 3 || b[0] != "ballots") return Corrupt("bad ballots line");
    for (size_t i = 0; i < 2; ++i) {
      std::vector<absl::string_view> rn = absl::StrSplit(b[i + 1], ':');
      if (rn.size() != 2 || !absl::SimpleAtoi(rn[0], &ballots[i]->round) ||
          !absl::SimpleAtoi(rn[1], &ballots[i]->node)) {
        return Corrupt(absl::StrCat("bad ballot '", b[i + 1], "'"));
      }
    }
  }
  return st;
}

absl::StatusOr<std::optional<PersistentState>> LoadPersistentState(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<PersistentState>();
    return ErrnoStatus("cannot open state file", path, errno);
  }
  std::string text;
  char buf[4096];
  for (int i = 0; i < 1024; ++i) {  // bounded: a state file is far below 4 MiB
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoStatus("cannot read state file", path, err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  absl::StatusOr<PersistentState> st = DecodePersistentState(text);
  if (!st.ok()) return absl::DataLossError(absl::StrCat(path, ": ", st.status().message()));
  return std::optional<PersistentState>(*std::move(st));
}

absl::Status SavePersistentState(const std::string& path, const PersistentState& state) {
  const std::string text = EncodePersistentState(state);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("cannot create", tmp, errno);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoStatus("cannot write", tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoStatus("cannot fsync", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus("cannot rename to", path, err);
  }
  // The rename is durable only once the directory entry is.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoStatus("cannot open directory", dir, errno);
  if (::fsync(dfd) != 0) {
    const int err = errno;
    ::close(dfd);
    return ErrnoStatus("cannot fsync directory", dir, err);
  }
  ::close(dfd);
  return absl::OkStatus();
}

}  // namespace baton::takeover
