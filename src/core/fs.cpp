// remove_tree() with POSIX nftw (depth-first, no symlink following); write_file_atomic().
#include "core/fs.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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

}  // namespace jet
