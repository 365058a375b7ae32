// emmcsim-guest-init: PID 1 of the User-Mode Linux guests scripts/linux boots (docs/linux.md).
// The guest's root is the host's filesystem (hostfs), so this runs from the host's build tree and
// the command it runs is the host's own (/usr/bin/mmc, dd, mkfs.ext4).
//
// The kernel command line names a run directory on the host: emmcsim.run=DIR. In it:
//   command      the shell command to run (written by scripts/linux, quoted for /bin/sh)
//   wait-for     optional: a device node to wait for before running (e.g. /dev/mmcblk0)
//   status       written here: the command's exit status, or "card" when the node never came
//   kernel.log   written here: the kernel log (dmesg) at the end
// The command runs as root with the host's PATH, in DIR, its output on the console (the host's
// standard output). Then the kernel log is saved, filesystems synced, and the guest powered off
// (reboot(RB_POWER_OFF): /sbin/poweroff is systemctl on Debian, which needs systemd as PID 1).
#include <fcntl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kWaitForDeviceSeconds = 30;

void say(const std::string& what) { std::fprintf(stderr, "emmcsim-guest-init: %s\n", what.c_str()); }

void mount_or_say(const char* source, const char* target, const char* type) {
  ::mkdir(target, 0755);
  if (::mount(source, target, type, 0, nullptr) != 0 && errno != EBUSY)
    say(std::string("mount ") + type + " on " + target + ": " + std::strerror(errno));
}

std::string kernel_parameter(const std::string& name) {
  std::ifstream in("/proc/cmdline");
  std::string word;
  while (in >> word)
    if (word.compare(0, name.size() + 1, name + "=") == 0) return word.substr(name.size() + 1);
  return {};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) say("cannot write " + path);
}

bool wait_for(const std::string& node) {
  for (int tenth = 0; tenth < 10 * kWaitForDeviceSeconds; ++tenth) {
    struct stat st {};
    if (::stat(node.c_str(), &st) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

int run_shell(const std::string& command_file, const std::string& dir) {
  const pid_t child = ::fork();
  if (child < 0) {
    say(std::string("fork: ") + std::strerror(errno));
    return 126;
  }
  if (child == 0) {
    if (::chdir(dir.c_str()) != 0) _exit(126);
    ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    ::setenv("HOME", "/root", 1);
    ::setenv("TERM", "dumb", 1);
    ::execl("/bin/sh", "sh", command_file.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  for (;;) {  // PID 1 reaps every orphan; the command's status is the one that counts
    const pid_t done = ::wait(&status);
    if (done == child) break;
    if (done < 0 && errno != EINTR) return 126;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 126;
}

void save_kernel_log(const std::string& path) {
  const int size = ::klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, nullptr, 0);
  if (size <= 0) return;
  std::vector<char> buffer(static_cast<std::size_t>(size));
  const int n = ::klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buffer.data(), size);
  if (n > 0) write_file(path, std::string(buffer.data(), static_cast<std::size_t>(n)));
}

}  // namespace

int main() {
  mount_or_say("proc", "/proc", "proc");
  mount_or_say("sysfs", "/sys", "sysfs");
  mount_or_say("devtmpfs", "/dev", "devtmpfs");
  const std::string dir = kernel_parameter("emmcsim.run");
  if (dir.empty()) {
    say("no emmcsim.run=DIR on the kernel command line");
  } else {
    const std::string node = read_file(dir + "/wait-for");
    const std::string wanted = node.substr(0, node.find_first_of("\n"));
    if (!wanted.empty() && !wait_for(wanted)) {
      say(wanted + " did not appear within " + std::to_string(kWaitForDeviceSeconds) + " s");
      write_file(dir + "/status", "card\n");
    } else {
      const int status = run_shell(dir + "/command", dir);
      write_file(dir + "/status", std::to_string(status) + "\n");
    }
    save_kernel_log(dir + "/kernel.log");
  }
  ::sync();
  ::reboot(RB_POWER_OFF);
  say(std::string("reboot: ") + std::strerror(errno));
  return 1;
}
