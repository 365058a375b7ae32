// What a parsed command line runs, and how its failures reach the user.
#pragma once

#include <functional>
#include <stdexcept>

namespace emmcsim::tools {

// Runs the selected command; returns the process exit status.
using Command = std::function<int()>;

// Bad input from the user (arguments, files): exit status 2, nothing touched.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The device answered, but not with success: exit status 1.
class RpmbFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace emmcsim::tools
