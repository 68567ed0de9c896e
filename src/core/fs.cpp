// remove_tree() with POSIX nftw (depth-first, no symlink following); write_file_atomic().
#include "core/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/check.h"

namespace jet {
namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return std::remove(path); }
}  // namespace

void remove_tree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 && errno == ENOENT) return;
  JET_CHECK(nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0, "{}: cannot remove ({})",
            path, std::strerror(errno));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  JET_CHECK(f, "{}: cannot write ({})", path, std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (fsync(fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    JET_FAIL("{}: write failed ({})", path, std::strerror(errno));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  JET_CHECK(f, "{}: cannot read ({})", path, std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  JET_CHECK(!f.bad(), "{}: cannot read ({})", path, std::strerror(errno));
  return ss.str();
}

std::string read_regular_file(const std::string& path, int64_t max_bytes, const std::string& raise) {
  // O_NONBLOCK: opening a FIFO does not wait for a writer; fstat then rejects it.
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  JET_CHECK(fd >= 0, "{}: cannot read ({})", path, std::strerror(errno));
  std::string out;
  try {
    struct stat st;
    JET_CHECK(fstat(fd, &st) == 0, "{}: cannot read ({})", path, std::strerror(errno));
    JET_CHECK(S_ISREG(st.st_mode), "{}: not a regular file", path);
    JET_CHECK(st.st_size <= max_bytes, "{}: {} bytes, more than the limit of {} ({})", path, st.st_size,
              max_bytes, raise);
    out.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out.size()) {
      const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      JET_CHECK(n >= 0, "{}: cannot read ({})", path, std::strerror(errno));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);  // the file shrank while being read: the caller's content hash tells
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);
  return out;
}

int remove_stale_temp_files(const std::string& dir) {
  if (!is_directory(dir)) return 0;
  int removed = 0;
  for (const std::string& rel : list_files(dir)) {
    const auto at = rel.rfind(".tmp.");
    if (at == std::string::npos) continue;
    const std::string digits = rel.substr(at + 5);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    // kill(pid, 0) fails with ESRCH when no such process runs (EPERM: one runs, under another user).
    if (pid != getpid() && (kill(pid, 0) == 0 || errno != ESRCH)) continue;
    if (std::remove((dir + "/" + rel).c_str()) == 0) ++removed;
  }
  return removed;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool path_exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

void make_dirs(const std::string& path) {
  if (path.empty() || is_directory(path)) return;
  const auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dirs(path.substr(0, slash));
  JET_CHECK(mkdir(path.c_str(), 0777) == 0 || (errno == EEXIST && is_directory(path)),
            "{}: cannot create directory ({})", path, std::strerror(errno));
}

namespace {
void list_into(const std::string& root, const std::string& rel, std::vector<std::string>& out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = opendir(dir.c_str());
  JET_CHECK(d, "{}: cannot list ({})", dir, std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  closedir(d);
  for (const auto& n : names) {
    const std::string r = rel.empty() ? n : rel + "/" + n;
    struct stat st;
    if (lstat((root + "/" + r).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode))
      list_into(root, r, out);
    else if (S_ISREG(st.st_mode))
      out.push_back(r);
  }
}
}  // namespace

std::vector<std::string> list_files(const std::string& dir) {
  std::vector<std::string> out;
  list_into(dir, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace jet
