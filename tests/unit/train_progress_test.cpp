// The progress bar's line: counts, times and a rate that is sane from the first update.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "train/progress.h"

namespace gpuml {
namespace {

// A first update right after the bar starts once showed the whole first chunk divided by
// microseconds (`data pack` made its bar inside the first progress callback): a rate of
// millions of records per second. Below 10 ms of clock there is no rate to show.
TEST(ProgressBar, NoRateFromAnInstantAndARealOneAfter) {
  std::FILE* sink = std::tmpfile();
  ASSERT_NE(sink, nullptr);
  ProgressBar bar("pack", 0, "records", sink);
  bar.set_interactive(false);
  bar.set_total(1000);
  bar.advance(500, 500);
  EXPECT_NE(bar.line("").find("500/1000"), std::string::npos) << bar.line("");
  EXPECT_NE(bar.line("").find(" ? records/s"), std::string::npos) << bar.line("");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string later = bar.line("");
  EXPECT_EQ(later.find(" ? records/s"), std::string::npos) << later;
  EXPECT_NE(later.find(" records/s"), std::string::npos) << later;
  std::fclose(sink);
}

}  // namespace
}  // namespace gpuml
