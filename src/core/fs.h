// File-system helpers. write_file_atomic() for every small output file; remove_tree() replaces std::filesystem::remove_all, which must not be called
// in jet: libtorch.so exports its own copy of the std::filesystem symbols, the dynamic linker binds
// our calls to it, and its remove_all jumps through a null pointer on any non-empty directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace jet {

// Removes a file or a directory tree; a missing path is not an error. Throws jet::Error on failure.
void remove_tree(const std::string& path);

// Writes bytes to path.tmp.<pid>, flushes, then renames it over path: readers never see a partial file.
void write_file_atomic(const std::string& path, const std::string& bytes);

// The whole file as bytes. Throws "<path>: cannot read (...)".
std::string read_file(const std::string& path);

// The bytes of a regular file of at most max_bytes. Anything else (a directory, a FIFO, a device such
// as /dev/zero, a larger file) throws one line without blocking or reading it; `raise` names the way
// to raise the limit (e.g. "--max-input-bytes raises it").
std::string read_regular_file(const std::string& path, int64_t max_bytes, const std::string& raise);

// Removes the temp files of writers that are gone (NAME.tmp.<pid> from write_file_atomic() and the
// safetensors writer, under dir, recursively, whose process <pid> no longer runs): what a killed run
// left behind. Returns how many were removed.
int remove_stale_temp_files(const std::string& dir);

bool is_directory(const std::string& path);
bool path_exists(const std::string& path);  // anything at path (file, directory, link)

// mkdir -p. Throws "<path>: cannot create directory (...)".
void make_dirs(const std::string& path);

// Regular files under dir (recursively, links not followed, names starting with '.' skipped), as
// paths relative to dir in byte order.
std::vector<std::string> list_files(const std::string& dir);

}  // namespace jet
