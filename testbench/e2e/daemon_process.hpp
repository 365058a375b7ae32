// DaemonProcess: `emmcsim serve` as a child process of an end-to-end test.
//
// start() fork/execs the binary with the given arguments, stdout and stderr appended to a log
// file, and polls (bounded) until the daemon has written "emmcsim: listening on" to that file —
// it prints the line once the socket accepts — or until it exits or the deadline passes. A
// killed daemon leaves its socket file behind, so the socket file alone says nothing.
// kill_now() is kill -9 and waitpid; terminate() is SIGTERM and a bounded wait for the exit
// status. Both return the wait status (WIFEXITED/WIFSIGNALED apply).
//
// Not thread-safe: a test that kills from one thread and talks from another guards it.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace emmcsim::e2e {

// The emmcsim binary under test (CTest sets EMMCSIM_BIN); empty when unset.
inline std::string emmcsim_binary() {
  const char* bin = std::getenv("EMMCSIM_BIN");
  return bin != nullptr ? std::string(bin) : std::string();
}

// Describes a wait status: "exited with status 0", "killed by signal 9".
inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "wait status " + std::to_string(status);
}

class DaemonProcess {
 public:
  static constexpr const char* kReadyMarker = "emmcsim: listening on";

  DaemonProcess(std::string binary, std::vector<std::string> args, std::string log_path)
      : binary_(std::move(binary)), args_(std::move(args)), log_path_(std::move(log_path)) {}
  ~DaemonProcess() {
    if (pid_ > 0) kill_now();
  }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts the daemon and waits until it listens. Throws std::runtime_error (with the log's
  // tail) when it exits first or is not ready within `timeout`; it is killed then.
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ > 0) throw std::runtime_error("DaemonProcess::start: the daemon runs already");
    const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) throw std::runtime_error("open " + log_path_ + ": " + std::strerror(errno));
    struct stat st {};
    ::fstat(log_fd, &st);
    const auto log_start = static_cast<std::size_t>(st.st_size);
    ++starts_;
    const std::string banner = "---- start " + std::to_string(starts_) + " ----\n";
    if (::write(log_fd, banner.data(), banner.size()) < 0) { /* the log is best effort */
    }

    // Everything the child needs is prepared before fork(): between fork and exec a child of a
    // multi-threaded process may only make async-signal-safe calls.
    std::vector<std::string> argv_strings;
    argv_strings.push_back(binary_);
    argv_strings.insert(argv_strings.end(), args_.begin(), args_.end());
    std::vector<char*> argv;
    for (std::string& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
      const int error = errno;
      ::close(log_fd);
      throw std::runtime_error(std::string("fork: ") + std::strerror(error));
    }
    if (pid == 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      const int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
      ::execv(argv[0], argv.data());
      static const char message[] = "DaemonProcess: execv failed\n";
      if (::write(STDERR_FILENO, message, sizeof message - 1) < 0) { /* nothing to do */
      }
      ::_exit(127);
    }
    ::close(log_fd);
    pid_ = pid;

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (log_since(log_start).find(kReadyMarker) != std::string::npos) return;
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        throw std::runtime_error("the daemon " + describe_wait_status(status) + " before listening; its log:\n" +
                                 log_since(log_start));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill_now();
        throw std::runtime_error("the daemon did not listen within " + std::to_string(timeout.count()) +
                                 " ms; its log:\n" + log_since(log_start));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // kill -9 and reap. Returns the wait status (normally "killed by signal 9"; anything else
  // means the daemon had died on its own). -1 when it was not running.
  int kill_now() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    return reap();
  }

  // SIGTERM, then waits up to `timeout` for the exit (SIGKILL after that). Returns the wait status.
  int terminate(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (r < 0 && errno != EINTR) {
        pid_ = -1;
        return -1;
      }
      if (std::chrono::steady_clock::now() >= deadline) return kill_now();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  // Non-blocking: has the daemon exited (reaped then, status in *status)?
  bool exited(int* status = nullptr) {
    if (pid_ <= 0) return true;
    int s = 0;
    if (::waitpid(pid_, &s, WNOHANG) == pid_) {
      pid_ = -1;
      if (status != nullptr) *status = s;
      return true;
    }
    return false;
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int starts() const { return starts_; }
  const std::string& log_path() const { return log_path_; }

  // The whole log, or its last `max_bytes`.
  std::string log_tail(std::size_t max_bytes = 4000) const {
    const std::string all = log_since(0);
    return all.size() <= max_bytes ? all : all.substr(all.size() - max_bytes);
  }

 private:
  int reap() {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    pid_ = -1;
    return r < 0 ? -1 : status;
  }

  std::string log_since(std::size_t offset) const {
    std::ifstream in(log_path_, std::ios::binary);
    if (!in) return {};
    in.seekg(static_cast<std::streamoff>(offset));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string binary_;
  std::vector<std::string> args_;
  std::string log_path_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

}  // namespace emmcsim::e2e
