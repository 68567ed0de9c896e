// remove_tree() with POSIX nftw (depth-first, no symlink following).
#include "core/fs.h"

#include <ftw.h>
#include <sys/stat.h>

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

}  // namespace jet
