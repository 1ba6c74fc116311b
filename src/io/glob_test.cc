#include "io/glob.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dlprep::io {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh folder per test under DLPREP_TEST_TMPDIR.
std::string MakeTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(DLPREP_TEST_TMPDIR) /
                 ("glob-" + std::string(info->test_suite_name()) + "-" + info->name() +
                  "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void Touch(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "x";
}

class GlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTestDir();
    for (const char* f :
         {"a.wav", "b.txt", "c.WAV", ".hidden.wav", "_SUCCESS", "sub/d.wav", "sub/e.txt",
          "sub/deep/f.wav", "sub2/g.wav", ".git/h.wav", "_tmp/i.wav"}) {
      Touch(root_ + "/" + f);
    }
  }

  // Expands and strips the root prefix, so expectations stay short.
  std::vector<std::string> Rel(const std::vector<std::string>& patterns,
                               bool recursive = false, const std::string& filter = "") {
    auto result = ExpandPaths(patterns, recursive, filter);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    std::vector<std::string> out;
    if (!result.ok()) return out;
    for (const auto& p : *result) {
      EXPECT_EQ(p.rfind(root_ + "/", 0), 0u) << p;
      out.push_back(p.substr(root_.size() + 1));
    }
    return out;
  }

  std::string root_;
};

TEST_F(GlobTest, DirectoryListsTopLevelFilesSkippingHiddenAndUnderscore) {
  EXPECT_THAT(Rel({root_}), ElementsAre("a.wav", "b.txt", "c.WAV"));
}

TEST_F(GlobTest, DirectoryRecursive) {
  EXPECT_THAT(Rel({root_}, true),
              ElementsAre("a.wav", "b.txt", "c.WAV", "sub/d.wav", "sub/deep/f.wav",
                          "sub/e.txt", "sub2/g.wav"));
}

TEST_F(GlobTest, StarStaysWithinOneSegment) {
  EXPECT_THAT(Rel({root_ + "/*.wav"}), ElementsAre("a.wav"));
  EXPECT_THAT(Rel({root_ + "/*/*.wav"}), ElementsAre("sub/d.wav", "sub2/g.wav"));
}

TEST_F(GlobTest, DoubleStarInTheMiddleMatchesZeroOrMoreDirectories) {
  EXPECT_THAT(Rel({root_ + "/**/*.wav"}),
              ElementsAre("a.wav", "sub/d.wav", "sub/deep/f.wav", "sub2/g.wav"));
  EXPECT_THAT(Rel({root_ + "/**/deep/*.wav"}), ElementsAre("sub/deep/f.wav"));
}

TEST_F(GlobTest, DoubleStarAtTheEndListsEverythingBelow) {
  EXPECT_THAT(Rel({root_ + "/sub/**"}),
              ElementsAre("sub/d.wav", "sub/deep/f.wav", "sub/e.txt"));
}

TEST_F(GlobTest, DoubleStarAtTheStartOfARelativePattern) {
  const fs::path old = fs::current_path();
  fs::current_path(root_);
  auto result = ExpandPaths({"**/f.wav", "./**/g.wav"}, false, "");
  fs::current_path(old);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_THAT(*result, ElementsAre("sub/deep/f.wav", "sub2/g.wav"));
}

TEST_F(GlobTest, QuestionMarkAndCharacterClasses) {
  EXPECT_THAT(Rel({root_ + "/?.wav"}), ElementsAre("a.wav"));
  EXPECT_THAT(Rel({root_ + "/[ab].*"}), ElementsAre("a.wav", "b.txt"));
  EXPECT_THAT(Rel({root_ + "/[!ab].*"}), ElementsAre("c.WAV"));
  EXPECT_THAT(Rel({root_ + "/*.[wW][aA][vV]"}), ElementsAre("a.wav", "c.WAV"));
}

TEST_F(GlobTest, GlobMatchingADirectoryStandsForItsFiles) {
  EXPECT_THAT(Rel({root_ + "/sub*"}),
              ElementsAre("sub/d.wav", "sub/e.txt", "sub2/g.wav"));
  EXPECT_THAT(Rel({root_ + "/sub*"}, true),
              ElementsAre("sub/d.wav", "sub/deep/f.wav", "sub/e.txt", "sub2/g.wav"));
}

TEST_F(GlobTest, HiddenAndUnderscoreNamesOnlyWhenAskedFor) {
  EXPECT_THAT(Rel({root_ + "/.*"}), ElementsAre(".git/h.wav", ".hidden.wav"));
  EXPECT_THAT(Rel({root_ + "/_*"}), ElementsAre("_SUCCESS", "_tmp/i.wav"));
  EXPECT_THAT(Rel({root_ + "/_SUCCESS", root_ + "/.hidden.wav"}),
              ElementsAre(".hidden.wav", "_SUCCESS"));
  // `**` does not descend into hidden or metadata directories.
  EXPECT_THAT(Rel({root_ + "/**/*.wav"}),
              ElementsAre("a.wav", "sub/d.wav", "sub/deep/f.wav", "sub2/g.wav"));
  EXPECT_FALSE(ExpandPaths({root_ + "/**/h.wav"}, false, "").ok());
  EXPECT_FALSE(ExpandPaths({root_ + "/**/i.wav"}, false, "").ok());
}

TEST_F(GlobTest, NameFilterMatchesTheFileNameOnly) {
  EXPECT_THAT(Rel({root_}, true, "*.wav"),
              ElementsAre("a.wav", "sub/d.wav", "sub/deep/f.wav", "sub2/g.wav"));
  EXPECT_THAT(Rel({root_ + "/**"}, false, "[de].*"),
              ElementsAre("sub/d.wav", "sub/e.txt"));
  // A filter with a '/' never matches a name.
  auto result = ExpandPaths({root_}, true, "sub/*.wav");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("name filter 'sub/*.wav'"));
}

TEST_F(GlobTest, SortedDeduplicatedAndNormalised) {
  EXPECT_THAT(
      Rel({root_ + "/b.txt", root_ + "/*.wav", root_ + "//./a.wav", root_ + "/b.txt"}),
      ElementsAre("a.wav", "b.txt"));
}

TEST_F(GlobTest, PatternMatchingNothingIsAnErrorNamingIt) {
  auto result = ExpandPaths({root_ + "/a.wav", root_ + "/*.flac"}, false, "");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsIOError());
  EXPECT_THAT(result.status().message(),
              HasSubstr("no files match '" + root_ + "/*.flac'"));
}

TEST_F(GlobTest, MissingPrefixDirectoryIsNamed) {
  auto result = ExpandPaths({root_ + "/nope/**/*.wav"}, false, "");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsIOError());
  EXPECT_THAT(result.status().message(),
              HasSubstr("directory '" + root_ + "/nope' does not exist"));
}

TEST_F(GlobTest, MissingPathIsNamed) {
  auto result = ExpandPaths({root_ + "/missing.wav"}, false, "");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(),
              HasSubstr("'" + root_ + "/missing.wav' does not exist"));
}

TEST_F(GlobTest, DirectoryWithoutFilesIsAnError) {
  fs::create_directories(root_ + "/empty/nested");
  Touch(root_ + "/empty/nested/x.bin");
  Touch(root_ + "/empty/.dot");
  auto result = ExpandPaths({root_ + "/empty"}, false, "");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(),
              HasSubstr("no files match '" + root_ + "/empty'"));
  EXPECT_THAT(result.status().message(), HasSubstr("recursive"));
  // Recursive lookup finds the nested file.
  EXPECT_THAT(Rel({root_ + "/empty"}, true), ElementsAre("empty/nested/x.bin"));
}

TEST_F(GlobTest, SymlinkedDirectoriesAreNotWalkedRecursively) {
  fs::create_directory_symlink(root_, root_ + "/sub/loop");
  EXPECT_THAT(Rel({root_ + "/sub"}, true),
              ElementsAre("sub/d.wav", "sub/deep/f.wav", "sub/e.txt"));
  EXPECT_THAT(Rel({root_ + "/sub/**"}),
              ElementsAre("sub/d.wav", "sub/deep/f.wav", "sub/e.txt"));
  // Named explicitly, the link is followed.
  EXPECT_THAT(Rel({root_ + "/sub/loop/*.txt"}), ElementsAre("sub/loop/b.txt"));
}

TEST_F(GlobTest, UnreadableDirectoryNamesThePath) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every directory";
  fs::create_directories(root_ + "/locked");
  Touch(root_ + "/locked/x.wav");
  chmod((root_ + "/locked").c_str(), 0);
  auto result = ExpandPaths({root_ + "/locked"}, false, "");
  chmod((root_ + "/locked").c_str(), 0755);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("'" + root_ + "/locked'"));
  EXPECT_THAT(result.status().message(), HasSubstr("ermission denied"));
}

}  // namespace
}  // namespace dlprep::io
