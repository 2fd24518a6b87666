#include "bench/cgroup_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "common/units.h"
#include "residency/cgroup_memory.h"
#include "residency/proc_file.h"

namespace dualblade {

namespace {

bool Exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// How long rmdir keeps retrying EBUSY while killed processes finish exiting.
constexpr int kRmdirRetries = 200;
constexpr auto kRmdirRetryDelay = std::chrono::milliseconds(10);

// The cgroup of one run: created with its limit, removed (after killing whatever is left in
// it) by Remove() or, on error paths, by the destructor.
class RunCgroup {
 public:
  static Result<std::unique_ptr<RunCgroup>> Create(const CgroupRunOptions& opts);
  ~RunCgroup() {
    if (!removed_) {
      Status st = Remove();
      if (!st.ok()) DB_LOG_WARN("%s", st.ToString().c_str());
    }
  }
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  CgroupVersion version() const { return version_; }
  const std::string& dir() const { return dir_; }
  uint64_t limit_bytes() const { return limit_bytes_; }

  Status AddProcess(pid_t pid) {
    return WriteControlFile(dir_ + "/cgroup.procs", std::to_string(pid) + "\n");
  }
  Result<uint64_t> ReadUsage() {
    const std::string path =
        dir_ + (version_ == CgroupVersion::kV2 ? "/memory.current" : "/memory.usage_in_bytes");
    DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
    return ParseCgroupCounter(text, path);
  }
  bool HasKernelPeak() const { return Exists(PeakPath()); }
  std::string PeakPath() const {
    return dir_ + (version_ == CgroupVersion::kV2 ? "/memory.peak" : "/memory.max_usage_in_bytes");
  }
  // nullopt when the kernel keeps no peak (v2 before 5.19).
  Result<std::optional<uint64_t>> ReadKernelPeak() {
    const std::string path = PeakPath();
    if (!Exists(path)) return std::optional<uint64_t>();
    DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
    DB_ASSIGN_OR_RETURN(uint64_t peak, ParseCgroupCounter(text, path));
    return std::optional<uint64_t>(peak);
  }
  Result<CgroupOomCounters> ReadOom() {
    const std::string path =
        dir_ + (version_ == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control");
    DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
    return ParseCgroupOomCounters(version_, text, path);
  }
  // v1 before 4.13 has no OOM kill counter: a SIGKILL after hitting the limit is the best sign.
  bool HitLimit() {
    auto text = ReadTextFile(dir_ + "/memory.failcnt");
    auto n = text.ok() ? ParseU64(TrimSpace(*text)) : std::nullopt;
    return n && *n > 0;
  }

  // SIGKILLs every process in the cgroup (cgroup.kill where the kernel has it).
  void KillAll() {
    if (version_ == CgroupVersion::kV2 && Exists(dir_ + "/cgroup.kill")) {
      if (WriteControlFile(dir_ + "/cgroup.kill", "1").ok()) return;
    }
    auto procs = ReadTextFile(dir_ + "/cgroup.procs");
    if (!procs.ok()) return;
    std::string_view text = *procs, tok;
    while (NextField(&text, &tok)) {
      if (auto pid = ParseU64(tok); pid && *pid > 0) ::kill(static_cast<pid_t>(*pid), SIGKILL);
    }
  }

  Status Remove() {
    removed_ = true;
    KillAll();
    for (int i = 0;; ++i) {
      if (::rmdir(dir_.c_str()) == 0 || errno == ENOENT) return Status::OK();
      if (errno != EBUSY || i == kRmdirRetries) return ErrnoStatus("remove cgroup " + dir_, errno);
      std::this_thread::sleep_for(kRmdirRetryDelay);
      KillAll();  // a process may have forked while we were killing
    }
  }

 private:
  RunCgroup() = default;
  CgroupVersion version_ = CgroupVersion::kV2;
  std::string dir_;
  uint64_t limit_bytes_ = 0;
  bool removed_ = false;
};

Result<CgroupVersion> VersionOfDirectory(const std::string& dir) {
  if (Exists(dir + "/cgroup.controllers")) return CgroupVersion::kV2;
  if (Exists(dir + "/memory.limit_in_bytes")) return CgroupVersion::kV1;
  return Status::InvalidArgument(dir +
                                 " is not a memory cgroup directory (no cgroup.controllers, "
                                 "no memory.limit_in_bytes)");
}

// cgroup v2 creates memory.max in a child only when the parent delegates the controller.
Status EnableMemoryForChildren(const std::string& parent) {
  const std::string control = parent + "/cgroup.subtree_control";
  DB_ASSIGN_OR_RETURN(std::string enabled, ReadTextFile(control));
  std::string_view text = enabled, tok;
  while (NextField(&text, &tok))
    if (tok == "memory") return Status::OK();
  Status st = WriteControlFile(control, "+memory");
  if (st.IsBusy()) {
    return Status::Busy("cannot enable the memory controller in " + control +
                        ": cgroup v2 forbids it while " + parent +
                        " holds processes of its own; name a delegated parent cgroup in "
                        "DUALBLADE_CGROUP_PARENT");
  }
  return st;
}

Result<std::unique_ptr<RunCgroup>> RunCgroup::Create(const CgroupRunOptions& opts) {
  std::string parent = opts.parent_dir;
  if (parent.empty()) {
    const char* env = std::getenv("DUALBLADE_CGROUP_PARENT");
    if (env != nullptr) parent = env;
  }
  CgroupVersion version = CgroupVersion::kV2;
  if (parent.empty()) {
    DB_ASSIGN_OR_RETURN(MemoryCgroup own, FindMemoryCgroup());
    parent = own.dir;
    version = own.version;
    if (version == CgroupVersion::kV2) {
      Status st = EnableMemoryForChildren(parent);
      // Our own cgroup holds processes (us, at least), so v2 may refuse to delegate memory
      // below it. Our parent delegates it already (that is how we have it), so a sibling works
      // where we may create one (a systemd scope, as root); a container's root cgroup has no
      // visible parent and needs DUALBLADE_CGROUP_PARENT.
      if (st.IsBusy() && !own.is_root()) {
        parent = own.dir.substr(0, own.dir.rfind('/'));
        st = EnableMemoryForChildren(parent);
      }
      DB_RETURN_IF_ERROR(st);
    }
  } else {
    DB_ASSIGN_OR_RETURN(version, VersionOfDirectory(parent));
    if (version == CgroupVersion::kV2) DB_RETURN_IF_ERROR(EnableMemoryForChildren(parent));
  }

  static std::atomic<uint64_t> counter{0};
  std::unique_ptr<RunCgroup> cg(new RunCgroup());
  cg->version_ = version;
  for (;;) {
    cg->dir_ = parent + "/dualblade-run-" + std::to_string(::getpid()) + "-" +
               std::to_string(counter.fetch_add(1));
    if (::mkdir(cg->dir_.c_str(), 0755) == 0) break;
    if (errno != EEXIST) {
      cg->removed_ = true;
      return ErrnoStatus("create cgroup " + cg->dir_, errno);
    }
  }
  const std::string limit_text = std::to_string(opts.memory_limit_bytes) + "\n";
  if (version == CgroupVersion::kV2) {
    DB_RETURN_IF_ERROR(WriteControlFile(cg->dir_ + "/memory.max", limit_text));
    // No swapping past the budget, and one OOM kills the whole run, not a random part of it.
    if (Exists(cg->dir_ + "/memory.swap.max"))
      DB_RETURN_IF_ERROR(WriteControlFile(cg->dir_ + "/memory.swap.max", "0\n"));
    if (Exists(cg->dir_ + "/memory.oom.group"))
      DB_RETURN_IF_ERROR(WriteControlFile(cg->dir_ + "/memory.oom.group", "1\n"));
  } else {
    DB_RETURN_IF_ERROR(WriteControlFile(cg->dir_ + "/memory.limit_in_bytes", limit_text));
    // memory+swap no larger than memory alone: no swapping past the budget. Only exists with
    // swap accounting; the kernel may refuse it when the parent's memsw limit is lower.
    const std::string memsw = cg->dir_ + "/memory.memsw.limit_in_bytes";
    if (Exists(memsw)) {
      Status st = WriteControlFile(memsw, limit_text);
      if (!st.ok()) DB_LOG_DEBUG("%s", st.ToString().c_str());
    }
  }
  const std::string limit_file =
      cg->dir_ + (version == CgroupVersion::kV2 ? "/memory.max" : "/memory.limit_in_bytes");
  DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(limit_file));
  DB_ASSIGN_OR_RETURN(cg->limit_bytes_, ParseCgroupLimit(version, text, limit_file));
  return cg;
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Reads exactly one byte; false on EOF or error.
bool ReadByte(int fd) {
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    return n == 1;
  }
}

// Forks a child that waits until it is inside the cgroup, then runs FN or execs ARGV.
// Writes all of TEXT to FD (the child's end of the report pipe).
void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Appends whatever the non-blocking FD has to *out; true once it reached end of file.
bool Drain(int fd, std::string* out) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

using ChildMain = std::function<int(std::string* report)>;

Result<CgroupRunResult> Run(const CgroupRunOptions& opts, const ChildMain* fn,
                            const std::vector<std::string>* argv) {
  if (opts.memory_limit_bytes == 0) {
    return Status::InvalidArgument("a cgroup run needs a memory limit above zero");
  }
  if (argv != nullptr && argv->empty()) return Status::InvalidArgument("empty command line");
  for (const std::string& path : opts.drop_cache_paths) DB_RETURN_IF_ERROR(DropPageCache(path));
  DB_ASSIGN_OR_RETURN(std::unique_ptr<RunCgroup> cg, RunCgroup::Create(opts));

  // Everything the child needs is built before fork: after fork only async-signal-safe calls
  // are safe for an exec, and this keeps the exec path to those.
  std::vector<char*> cargv;
  if (argv != nullptr) {
    for (const std::string& a : *argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
  }
  int go[2], exec_err[2];
  // A socket pair rather than a pipe: send(MSG_NOSIGNAL) to a child that died early fails with
  // EPIPE instead of killing this process with SIGPIPE.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
    return ErrnoStatus("socketpair", errno);
  }
  UniqueFd go_read(go[0]), go_write(go[1]);
  if (::pipe2(exec_err, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd err_read(exec_err[0]), err_write(exec_err[1]);
  // The child's report travels over a pipe the parent drains while it waits: a report larger
  // than the pipe buffer would otherwise block the child's exit forever.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd report_read(report[0]), report_write(report[1]);
  if (::fcntl(report[0], F_SETFL, O_NONBLOCK) != 0) return ErrnoStatus("fcntl O_NONBLOCK", errno);

  std::fflush(nullptr);  // or the child would flush the parent's buffered output a second time
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus("fork", errno);
  if (pid == 0) {
    ::close(go[1]);
    ::close(exec_err[0]);
    if (!ReadByte(go[0])) ::_exit(126);  // the parent could not move us: run nothing
    ::close(go[0]);
    ::close(report[0]);
    if (fn != nullptr) {
      std::string text;
      int rc = (*fn)(&text);
      std::fflush(nullptr);
      WriteAll(report[1], text);
      ::_exit(rc & 0xff);
    }
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    ssize_t ignored = ::write(exec_err[1], &e, sizeof(e));
    (void)ignored;
    ::_exit(127);
  }
  go_read.Reset();
  err_write.Reset();
  report_write.Reset();
  auto reap = [pid](int* status) {
    while (::waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
  };
  int wstatus = 0;
  if (Status st = cg->AddProcess(pid); !st.ok()) {
    ::kill(pid, SIGKILL);
    reap(&wstatus);
    return st;
  }
  Stopwatch wall;
  if (::send(go_write.get(), "g", 1, MSG_NOSIGNAL) != 1) {
    Status st = ErrnoStatus("release the child", errno);
    ::kill(pid, SIGKILL);
    reap(&wstatus);
    return st;
  }
  go_write.Reset();
  if (argv != nullptr) {
    int e = 0;
    ssize_t n;
    while ((n = ::read(err_read.get(), &e, sizeof(e))) < 0 && errno == EINTR) {
    }
    if (n == static_cast<ssize_t>(sizeof(e))) {
      reap(&wstatus);
      return ErrnoStatus("execute " + (*argv)[0], e);
    }
  }

  CgroupRunResult r;
  r.version = cg->version();
  r.cgroup_dir = cg->dir();
  r.limit_bytes = cg->limit_bytes();
  UniqueFd pidfd(PidfdOpen(pid));
  // The runner shares the CPUs with what it measures: with a kernel peak file and a pidfd it
  // sleeps until the child exits (or the timeout), instead of waking every poll interval.
  const bool sample_peak = opts.always_sample_peak || !cg->HasKernelPeak();
  uint64_t sampled_peak = 0;
  bool report_done = false;
  for (;;) {
    if (!report_done) report_done = Drain(report_read.get(), &r.child_report);
    pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return ErrnoStatus("wait for the child", errno);
    if (sample_peak) {
      if (auto usage = cg->ReadUsage(); usage.ok()) sampled_peak = std::max(sampled_peak, *usage);
    }
    if (opts.timeout_ms != 0 && !r.timed_out && wall.ElapsedMillis() > double(opts.timeout_ms)) {
      r.timed_out = true;
      cg->KillAll();
    }
    if (pidfd.valid()) {
      int wait_ms = static_cast<int>(opts.poll_interval_ms);
      if (!sample_peak) {
        wait_ms = -1;
        if (opts.timeout_ms != 0 && !r.timed_out) {
          double left_ms = double(opts.timeout_ms) - wall.ElapsedMillis();
          wait_ms = std::max(1, static_cast<int>(std::min(left_ms + 1, 1e9)));
        }
      }
      struct pollfd p[2] = {{pidfd.get(), POLLIN, 0}, {report_read.get(), POLLIN, 0}};
      ::poll(p, report_done ? 1 : 2, wait_ms);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(opts.poll_interval_ms));
    }
  }
  r.wall_ms = wall.ElapsedMillis();
  // Whatever the child wrote before exiting is in the pipe; a grandchild may hold the write end
  // open, so read what is there rather than wait for end of file.
  if (!report_done) Drain(report_read.get(), &r.child_report);
  r.exited = WIFEXITED(wstatus);
  r.exit_code = r.exited ? WEXITSTATUS(wstatus) : -1;
  r.term_signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;

  DB_ASSIGN_OR_RETURN(std::optional<uint64_t> kernel_peak, cg->ReadKernelPeak());
  r.peak_from_kernel = kernel_peak.has_value();
  r.peak_bytes = kernel_peak.value_or(sampled_peak);
  r.sampled_peak_bytes = sampled_peak;
  DB_ASSIGN_OR_RETURN(CgroupOomCounters oom, cg->ReadOom());
  r.oom_kill_events = oom.oom_kill_events;
  r.oom_killed = oom.has_oom_kill ? oom.oom_kill_events > 0
                                  : (r.term_signal == SIGKILL && !r.timed_out && cg->HitLimit());
  DB_RETURN_IF_ERROR(cg->Remove());
  return r;
}

}  // namespace

std::string CgroupRunResult::ToString() const {
  std::string s = exited ? "exit " + std::to_string(exit_code)
                         : "killed by signal " + std::to_string(term_signal);
  if (oom_killed) s += " (OOM kill)";
  if (timed_out) s += " (timed out)";
  s += ", peak " + FormatBytes(peak_bytes) + (peak_from_kernel ? "" : " (sampled)") + " of " +
       FormatBytes(limit_bytes) + ", " + CgroupVersionName(version) + " " + cgroup_dir;
  char ms[32];
  std::snprintf(ms, sizeof(ms), ", %.1f ms", wall_ms);
  return s + ms;
}

std::optional<std::string> CgroupRunnerUnavailableReason(const std::string& parent_dir) {
  CgroupRunOptions opts;
  opts.memory_limit_bytes = 64 * kMiB;
  opts.parent_dir = parent_dir;
  auto cg = RunCgroup::Create(opts);
  if (!cg.ok()) {
    return (::geteuid() != 0 ? "not root, and " : "") + cg.status().ToString();
  }
  Status st = (*cg)->Remove();
  if (!st.ok()) return st.ToString();
  return std::nullopt;
}

Result<CgroupRunResult> RunFunctionInMemoryCgroup(const CgroupRunOptions& opts,
                                                  const std::function<int()>& fn) {
  const ChildMain main = [&fn](std::string*) { return fn(); };
  return Run(opts, &main, nullptr);
}

Result<CgroupRunResult> RunFunctionInMemoryCgroupWithReport(
    const CgroupRunOptions& opts, const std::function<int(std::string* report)>& fn) {
  return Run(opts, &fn, nullptr);
}

Result<CgroupRunResult> RunCommandInMemoryCgroup(const CgroupRunOptions& opts,
                                                 const std::vector<std::string>& argv) {
  return Run(opts, nullptr, &argv);
}

Status DropPageCache(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path + " to drop its cached pages", errno);
  // DONTNEED skips dirty pages: write them back first so everything can go.
  if (::fdatasync(fd.get()) != 0 && errno != EINVAL) {
    return ErrnoStatus("fdatasync " + path, errno);
  }
  int rc = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  if (rc != 0) return ErrnoStatus("posix_fadvise(DONTNEED) " + path, rc);
  return Status::OK();
}

}  // namespace dualblade
