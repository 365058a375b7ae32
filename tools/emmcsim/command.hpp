// What a parsed command line runs, and how its failures reach the user.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "emmcsim/rpmb/file_store.hpp"

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

// The words an option of enum type (or a coded value) accepts, in the order --help lists them.
template <typename Value>
using Words = std::vector<std::pair<std::string, Value>>;

// A CLI11 transformer for an option that holds `Value`: each word becomes its value while the
// command line is parsed, and anything else (also the number behind a word) is refused there with
// the list of words. Unlike CLI::CheckedTransformer, --help shows the words alone.
template <typename Value>
CLI::Validator one_of(Words<Value> words) {
  std::string list;
  for (const auto& word : words) list += (list.empty() ? "" : "|") + word.first;
  CLI::Validator validator(
      [words, list](std::string& input) -> std::string {
        for (const auto& [word, value] : words) {
          if (word != input) continue;
          if constexpr (std::is_enum_v<Value>)
            input = std::to_string(static_cast<std::underlying_type_t<Value>>(value));
          else
            input = std::to_string(value);
          return {};
        }
        return "'" + input + "' is not one of " + list;
      },
      "");
  validator.name("one of " + list);
  return validator;
}

// The words of --durability, shared by `serve` and `rpmb`.
inline Words<rpmb::Durability> durability_words() {
  return {{"sync", rpmb::Durability::sync_every_commit}, {"os", rpmb::Durability::os_managed}};
}

}  // namespace emmcsim::tools
