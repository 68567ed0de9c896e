// File-system helpers. write_file_atomic() for every small output file; remove_tree() replaces std::filesystem::remove_all, which must not be called
// in jet: libtorch.so exports its own copy of the std::filesystem symbols, the dynamic linker binds
// our calls to it, and its remove_all jumps through a null pointer on any non-empty directory.
#pragma once
#include <string>
#include <vector>

namespace jet {

// Removes a file or a directory tree; a missing path is not an error. Throws jet::Error on failure.
void remove_tree(const std::string& path);

// Writes bytes to path.tmp.<pid>, flushes, then renames it over path: readers never see a partial file.
void write_file_atomic(const std::string& path, const std::string& bytes);

// The whole file as bytes. Throws "<path>: cannot read (...)".
std::string read_file(const std::string& path);

bool is_directory(const std::string& path);
bool path_exists(const std::string& path);  // anything at path (file, directory, link)

// mkdir -p. Throws "<path>: cannot create directory (...)".
void make_dirs(const std::string& path);

// Regular files under dir (recursively, links not followed, names starting with '.' skipped), as
// paths relative to dir in byte order.
std::vector<std::string> list_files(const std::string& dir);

}  // namespace jet
