#include "cli_runner.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "testing/test_env.h"

namespace dualblade::testing {

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

CliResult RunDualblade(const std::vector<std::string>& args) {
  TempDir dir;
  std::string cmd = ShellQuote(DualbladeBinary());
  for (const std::string& a : args) {
    cmd += ' ';
    cmd += ShellQuote(a);
  }
  cmd += " >";
  cmd += ShellQuote(dir.File("out"));
  cmd += " 2>";
  cmd += ShellQuote(dir.File("err"));
  CliResult r;
  int st = std::system(cmd.c_str());
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = ReadBytes(dir.File("out"));
  r.err = ReadBytes(dir.File("err"));
  return r;
}

std::string ReadBytes(const std::string& path, uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string s;
  char buf[1 << 16];
  while (in && s.size() < max_bytes) {
    in.read(buf, sizeof(buf));
    s.append(buf, static_cast<size_t>(in.gcount()));
  }
  if (s.size() > max_bytes) s.resize(max_bytes);
  return s;
}

void WriteBytes(const std::string& path, uint64_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(bytes.size())) throw std::runtime_error("short write to " + path);
}

void MakeZeroFile(const std::string& path, uint64_t size_bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size_bytes));
  ::close(fd);
  if (rc != 0) throw std::runtime_error("cannot preallocate " + path);
}

}  // namespace dualblade::testing
