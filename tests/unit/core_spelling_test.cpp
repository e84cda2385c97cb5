// "Did you mean" for unknown flags, fields and values, and counts in words ("1 epoch").
#include <gtest/gtest.h>

#include "core/spelling.h"

namespace gpuml {
namespace {

TEST(Spelling, NearestNameWithinAThirdOfTheWord) {
  const std::vector<std::string> flags = {"--epochs", "--lr", "--batch-size", "--shard-size", "--seed"};
  EXPECT_EQ(nearest_name("--epoch", flags), "--epochs");
  EXPECT_EQ(nearest_name("--batch-szie", flags), "--batch-size");  // a swap is one edit
  EXPECT_EQ(nearest_name("--shard-sise", flags), "--shard-size");
  EXPECT_EQ(nearest_name("--colour-scheme", flags), "");
  EXPECT_EQ(did_you_mean("in_feature", {"in_features", "out_features"}), " (did you mean 'in_features'?)");
  EXPECT_EQ(did_you_mean("xyz", {"in_features"}), "");
}

TEST(Spelling, CountOfUsesThePluralOnlyWhenNotOne) {
  EXPECT_EQ(count_of(1, "epoch"), "1 epoch");
  EXPECT_EQ(count_of(5, "epoch"), "5 epochs");
  EXPECT_EQ(count_of(0, "epoch"), "0 epochs");
}

}  // namespace
}  // namespace gpuml
