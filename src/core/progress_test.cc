#include "core/progress.h"

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dlprep {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

void Wait() { std::this_thread::sleep_for(std::chrono::milliseconds(80)); }

TEST(ProgressTest, PartsNeverExceedTheTotalAndTheEtaIsNeverNegative) {
  Progress p("convert", 3, /*enabled=*/false);
  p.Add(100, 2048);
  Wait();
  EXPECT_THAT(p.Line(), StartsWith("[convert] 100 rows, 2.0 KiB, "));
  EXPECT_THAT(p.Line(), HasSubstr(", part 0/3"));
  EXPECT_THAT(p.Line(), Not(HasSubstr("ETA")));  // nothing done: no estimate yet
  p.PartDone();
  EXPECT_TRUE(std::regex_search(p.Line(), std::regex(", part 1/3, ETA [0-9]+:[0-9][0-9]$")))
      << p.Line();
  for (int i = 0; i < 4; ++i) p.PartDone();  // more reports than parts
  const std::string line = p.Line();
  EXPECT_THAT(line, HasSubstr(", part 3/3"));
  EXPECT_THAT(line, Not(HasSubstr("ETA")));
  EXPECT_THAT(line, Not(HasSubstr("-")));
}

TEST(ProgressTest, UnknownPartsShowNoPartsAndNoEta) {
  Progress p("files", -1, /*enabled=*/false);
  p.Add(5, 10);
  p.PartDone();
  Wait();
  EXPECT_THAT(p.Line(), Not(HasSubstr("part")));
  EXPECT_THAT(p.Line(), Not(HasSubstr("ETA")));
}

TEST(ProgressTest, KnownRowCountGivesTheEtaOfAReadingPhase) {
  Progress p("windows", 2, /*enabled=*/false);
  p.SetTotalRows(40000);
  p.BeginPhase("read+shuffle", 2, /*reading=*/true, /*final=*/false);
  p.AddRead(10000, 1 << 20);
  Wait();
  std::string line = p.Line();
  EXPECT_THAT(line, StartsWith("[windows] read+shuffle: 10.0k of 40.0k rows read, 1.0 MiB, "));
  EXPECT_THAT(line, HasSubstr(", part 0/2"));
  // An estimate of this phase's end (not the job's), from a quarter of the rows read.
  EXPECT_TRUE(std::regex_search(line, std::regex(", phase ETA [0-9]+:[0-9][0-9]$"))) << line;

  p.PartDone();
  p.PartDone();
  p.BeginPhase("groups", 64, /*reading=*/false, /*final=*/true);
  line = p.Line();
  // Counters of the new phase start at zero; written rows are shown now.
  EXPECT_THAT(line, StartsWith("[windows] groups: 0 rows, 0 B"));
  EXPECT_THAT(line, HasSubstr(", bucket 0/64"));
  EXPECT_EQ(p.parts(), 0);
  p.Add(300, 3000);
  p.PartDone();
  Wait();
  line = p.Line();
  EXPECT_THAT(line, StartsWith("[windows] groups: 300 rows, 2.9 KiB, "));
  EXPECT_THAT(line, HasSubstr(", bucket 1/64, ETA "));
  EXPECT_THAT(line, Not(HasSubstr("phase ETA")));
  EXPECT_TRUE(std::regex_search(line, std::regex("ETA [0-9]+:[0-9][0-9]$"))) << line;
}

TEST(ProgressTest, DetailIsAppended) {
  Progress p("score-http", 1, /*enabled=*/false);
  p.SetDetail([] { return std::string("12 scored, 3 failed, 1 retry, 4 requests in flight"); });
  EXPECT_THAT(p.Line(), HasSubstr(", 12 scored, 3 failed, 1 retry, 4 requests in flight"));
}

}  // namespace
}  // namespace dlprep
