// core/fs: read_regular_file refuses what is not a regular file (without blocking on a FIFO or reading a
// device) and files over the limit; remove_stale_temp_files removes only the temp files of writers that
// are gone.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "../error_of.h"
#include "core/fs.h"

namespace {

using jet::test::error_of;

struct TempDir {
  std::string path = fmt::format("/tmp/jet_fs_{}_{}", getpid(), rand());
  TempDir() { jet::make_dirs(path); }
  ~TempDir() { jet::remove_tree(path); }
};

// The id of a process that has exited (and been reaped).
pid_t dead_pid() {
  const pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

TEST(Fs, ReadRegularFile) {
  TempDir d;
  const std::string f = d.path + "/a.txt";
  std::ofstream(f) << "hello";
  EXPECT_EQ(jet::read_regular_file(f, 5, "--max"), "hello");
  EXPECT_EQ(error_of([&] { jet::read_regular_file(f, 4, "--max raises it"); }),
            f + ": 5 bytes, more than the limit of 4 (--max raises it)");
  EXPECT_EQ(error_of([&] { jet::read_regular_file("/dev/zero", 1 << 20, "--max"); }), "/dev/zero: not a regular file");
  EXPECT_EQ(error_of([&] { jet::read_regular_file(d.path, 1 << 20, "--max"); }), d.path + ": not a regular file");
  const std::string fifo = d.path + "/fifo.txt";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { jet::read_regular_file(fifo, 1 << 20, "--max"); }), fifo + ": not a regular file");
  EXPECT_NE(error_of([&] { jet::read_regular_file(d.path + "/none", 1, "--max"); }).find("cannot read"),
            std::string::npos);
}

TEST(Fs, RemoveStaleTempFiles) {
  TempDir d;
  jet::make_dirs(d.path + "/sub");
  const pid_t gone = dead_pid();
  const std::string stale1 = fmt::format("{}/ck.safetensors.tmp.{}", d.path, gone);
  const std::string stale2 = fmt::format("{}/sub/progress.jsonl.tmp.{}", d.path, gone);
  const std::string live = fmt::format("{}/other.tmp.{}", d.path, getppid());  // its writer still runs
  const std::string keep = d.path + "/notes.tmp.txt";
  for (const auto& f : {stale1, stale2, live, keep}) std::ofstream(f) << "x";
  EXPECT_EQ(jet::remove_stale_temp_files(d.path), 2);
  EXPECT_FALSE(jet::path_exists(stale1));
  EXPECT_FALSE(jet::path_exists(stale2));
  EXPECT_TRUE(jet::path_exists(live));
  EXPECT_TRUE(jet::path_exists(keep));
  EXPECT_EQ(jet::remove_stale_temp_files(d.path + "/missing"), 0);
}

}  // namespace
