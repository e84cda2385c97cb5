// "Did you mean": the known name nearest to a misspelt one, for messages about unknown flags,
// fields and values.
//
//   std::string near = nearest_name("--epoch", {"--epochs", "--lr"});   // "--epochs"
//   std::string none = nearest_name("--colour", {"--epochs", "--lr"});  // "" (nothing close)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpuml {

// The name in `names` with the smallest edit distance to `word` (ties: the first), when that
// distance is at most a third of the word's length (at least 1, at most 3); else "".
std::string nearest_name(const std::string& word, const std::vector<std::string>& names);

// " (did you mean 'NAME'?)" for the nearest name, or "" when none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& names);

// "1 epoch", "5 epochs": a count with its noun, plural when the count is not 1.
std::string count_of(int64_t count, const std::string& noun);

}  // namespace gpuml
