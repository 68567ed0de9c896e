// remove_tree() with POSIX nftw (depth-first, no symlink following); write_file_atomic().
#include "core/fs.h"

#include <dirent.h>
#include <ftw.h>
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
