#include "core/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/check.h"

namespace jet {

MappedFile map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  JET_CHECK(fd >= 0, "{}: cannot open ({})", path, std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    JET_FAIL("{}: not a regular file", path);
  }
  MappedFile m;
  m.size = static_cast<size_t>(st.st_size);
  if (m.size == 0) {
    ::close(fd);
    return m;
  }
  void* p = mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  JET_CHECK(p != MAP_FAILED, "{}: cannot map ({})", path, std::strerror(err));
  const size_t size = m.size;
  m.mapping = std::shared_ptr<void>(p, [size](void* q) { munmap(q, size); });
  m.data = static_cast<const uint8_t*>(p);
  return m;
}

}  // namespace jet
