#include "io/glob.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include <arrow/status.h>

namespace dlprep::io {
namespace {

namespace fs = std::filesystem;

enum class Kind { kFile, kDir, kDirLink, kOther };

struct Entry {
  std::string name;
  Kind kind;
};

// Hidden ('.') and Spark/Hadoop metadata ('_') names are skipped when listing.
bool IsSkippedName(std::string_view name) {
  return !name.empty() && (name[0] == '.' || name[0] == '_');
}

std::string Join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out = dir;
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

class Expander {
 public:
  Expander(bool recursive, const std::string& name_filter)
      : recursive_(recursive), name_filter_(name_filter) {}

  arrow::Status Expand(const std::string& pattern) {
    if (pattern.empty()) return arrow::Status::IOError("empty input path");
    const size_t before = out_.size();
    segs_.clear();
    std::string root = pattern[0] == '/' ? "/" : "";
    size_t pos = 0;
    while (pos <= pattern.size()) {
      size_t slash = pattern.find('/', pos);
      if (slash == std::string::npos) slash = pattern.size();
      std::string seg = pattern.substr(pos, slash - pos);
      if (!seg.empty() && seg != ".") segs_.push_back(std::move(seg));
      pos = slash + 1;
    }
    size_t first_glob = segs_.size();
    for (size_t i = 0; i < segs_.size(); ++i) {
      if (segs_[i] == "**" || HasGlobWildcard(segs_[i])) {
        first_glob = i;
        break;
      }
    }
    std::string prefix = root;
    for (size_t i = 0; i < first_glob; ++i) prefix = Join(prefix, segs_[i]);

    if (first_glob == segs_.size()) {
      // A plain path: a file or a directory.
      std::error_code ec;
      const fs::file_status st = fs::status(prefix.empty() ? "." : prefix, ec);
      if (ec || !fs::exists(st)) {
        if (ec && ec != std::errc::no_such_file_or_directory) {
          return arrow::Status::IOError("cannot access '", pattern, "': ", ec.message());
        }
        return arrow::Status::IOError("input path '", pattern, "' does not exist");
      }
      if (fs::is_regular_file(st)) {
        AddFile(prefix, segs_.empty() ? std::string_view(prefix)
                                      : std::string_view(segs_.back()));
      } else if (fs::is_directory(st)) {
        ARROW_RETURN_NOT_OK(AddDirFiles(prefix, recursive_));
      } else {
        return arrow::Status::IOError("input path '", pattern,
                                      "' is neither a regular file nor a directory");
      }
      if (out_.size() == before) {
        if (fs::is_directory(st)) {
          return arrow::Status::IOError(
              "no files match '", pattern, "': the directory has no files",
              recursive_ ? ""
                         : " at its top level (pass --recursive to look in its "
                           "subfolders too; recursive=True in Python)",
              name_filter_.empty() ? ""
                                   : " matching the name filter '" + name_filter_ + "'",
              " (names starting with '.' or '_' are skipped)");
        }
        return arrow::Status::IOError("no files match '", pattern, "': the name filter '",
                                      name_filter_, "' rejects it");
      }
      return arrow::Status::OK();
    }

    if (!prefix.empty()) {
      std::error_code ec;
      if (!fs::is_directory(prefix, ec)) {
        return arrow::Status::IOError("no files match '", pattern, "': directory '",
                                      prefix, "' does not exist");
      }
    }
    ARROW_RETURN_NOT_OK(Walk(prefix, first_glob));
    if (out_.size() == before) {
      return arrow::Status::IOError(
          "no files match '", pattern, "'",
          name_filter_.empty() ? "" : " with name filter '" + name_filter_ + "'");
    }
    return arrow::Status::OK();
  }

  std::vector<std::string> TakeSorted() {
    std::sort(out_.begin(), out_.end());
    out_.erase(std::unique(out_.begin(), out_.end()), out_.end());
    return std::move(out_);
  }

 private:
  // Reads `dir` ("" is the working directory) once, classifying its entries.
  arrow::Result<std::vector<Entry>> List(const std::string& dir) {
    std::vector<Entry> entries;
    std::error_code ec;
    fs::directory_iterator it(dir.empty() ? fs::path(".") : fs::path(dir), ec);
    if (ec) {
      return arrow::Status::IOError("cannot list directory '", dir.empty() ? "." : dir,
                                    "': ", ec.message());
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const fs::directory_entry& e = *it;
      Entry entry{e.path().filename().string(), Kind::kOther};
      std::error_code tec;
      if (e.is_symlink(tec)) {
        const fs::file_status st = fs::status(e.path(), tec);  // follows the link
        if (!tec && fs::is_directory(st)) entry.kind = Kind::kDirLink;
        if (!tec && fs::is_regular_file(st)) entry.kind = Kind::kFile;
      } else if (e.is_directory(tec)) {
        entry.kind = Kind::kDir;
      } else if (e.is_regular_file(tec)) {
        entry.kind = Kind::kFile;
      }
      entries.push_back(std::move(entry));
    }
    if (ec) {
      return arrow::Status::IOError("cannot list directory '", dir.empty() ? "." : dir,
                                    "': ", ec.message());
    }
    return entries;
  }

  void AddFile(const std::string& path, std::string_view name) {
    if (!name_filter_.empty() &&
        fnmatch(name_filter_.c_str(), std::string(name).c_str(), FNM_PERIOD) != 0) {
      return;
    }
    out_.push_back(path);
  }

  arrow::Status AddDirFiles(const std::string& dir, bool recursive) {
    ARROW_ASSIGN_OR_RAISE(auto entries, List(dir));
    for (const Entry& e : entries) {
      if (IsSkippedName(e.name)) continue;
      if (e.kind == Kind::kFile) {
        AddFile(Join(dir, e.name), e.name);
      } else if (e.kind == Kind::kDir && recursive) {
        ARROW_RETURN_NOT_OK(AddDirFiles(Join(dir, e.name), true));
      }
    }
    return arrow::Status::OK();
  }

  // Matches segments [i, end) below `dir`.
  arrow::Status Walk(const std::string& dir, size_t i) {
    const std::string& seg = segs_[i];
    if (seg != "**" && !HasGlobWildcard(seg)) {
      // A plain segment after a wildcard one: look it up instead of listing `dir`.
      const std::string path = Join(dir, seg);
      std::error_code ec;
      const fs::file_status st = fs::status(path, ec);
      if (ec) return arrow::Status::OK();
      const bool last = i + 1 == segs_.size();
      if (last && fs::is_regular_file(st)) {
        AddFile(path, seg);
      } else if (fs::is_directory(st)) {
        if (last) return AddDirFiles(path, recursive_);
        return Walk(path, i + 1);
      }
      return arrow::Status::OK();
    }
    ARROW_ASSIGN_OR_RAISE(auto entries, List(dir));
    return MatchEntries(dir, entries, i);
  }

  // Matches segment i (and those after it) against the already listed `entries` of
  // `dir`, so that `**` reads each directory once.
  arrow::Status MatchEntries(const std::string& dir, const std::vector<Entry>& entries,
                             size_t i) {
    const std::string& seg = segs_[i];
    const bool last = i + 1 == segs_.size();
    if (seg == "**") {
      if (last) {
        for (const Entry& e : entries) {
          if (e.kind == Kind::kFile && !IsSkippedName(e.name)) {
            AddFile(Join(dir, e.name), e.name);
          }
        }
      } else {
        ARROW_RETURN_NOT_OK(MatchEntries(dir, entries, i + 1));  // zero directories
      }
      for (const Entry& e : entries) {
        if (e.kind == Kind::kDir && !IsSkippedName(e.name)) {
          ARROW_RETURN_NOT_OK(Walk(Join(dir, e.name), i));
        }
      }
      return arrow::Status::OK();
    }
    for (const Entry& e : entries) {
      if (IsSkippedName(e.name) && seg[0] != e.name[0]) continue;
      if (fnmatch(seg.c_str(), e.name.c_str(), FNM_PERIOD) != 0) continue;
      const std::string path = Join(dir, e.name);
      if (last) {
        if (e.kind == Kind::kFile) {
          AddFile(path, e.name);
        } else if (e.kind == Kind::kDir || e.kind == Kind::kDirLink) {
          ARROW_RETURN_NOT_OK(AddDirFiles(path, recursive_));
        }
      } else if (e.kind == Kind::kDir || e.kind == Kind::kDirLink) {
        ARROW_RETURN_NOT_OK(Walk(path, i + 1));
      }
    }
    return arrow::Status::OK();
  }

  const bool recursive_;
  const std::string name_filter_;
  std::vector<std::string> segs_;
  std::vector<std::string> out_;
};

}  // namespace

bool HasGlobWildcard(const std::string& segment) {
  return segment.find_first_of("*?[") != std::string::npos;
}

arrow::Result<std::vector<std::string>> ExpandPaths(
    const std::vector<std::string>& patterns, bool recursive,
    const std::string& name_filter) {
  Expander expander(recursive, name_filter);
  for (const std::string& pattern : patterns) {
    ARROW_RETURN_NOT_OK(expander.Expand(pattern));
  }
  return expander.TakeSorted();
}

namespace {

namespace fs = std::filesystem;

// Absolute, normalized, symbolic links resolved where the path exists; no trailing '/'.
fs::path Resolved(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(fs::path(path)), ec);
  if (ec) p = fs::absolute(fs::path(path)).lexically_normal();
  if (p.filename().empty() && p.has_parent_path() && p != p.root_path()) {
    p = p.parent_path();
  }
  return p;
}

// The segments of `path` below `base`, or nullopt when `path` is not `base` or inside it.
std::optional<std::vector<std::string>> SegmentsBelow(const fs::path& path,
                                                      const fs::path& base) {
  auto p = path.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++p) {
    if (b->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *b) return std::nullopt;
  }
  std::vector<std::string> rest;
  for (; p != path.end(); ++p) {
    if (!p->empty()) rest.push_back(p->string());
  }
  return rest;
}

}  // namespace

arrow::Status CheckOutputOutsideInputs(const std::vector<std::string>& inputs,
                                       const std::string& output_dir) {
  if (output_dir.empty()) return arrow::Status::OK();
  const fs::path out = Resolved(output_dir);
  for (const auto& input : inputs) {
    if (input.find("://") != std::string::npos) continue;  // not a local path
    // The literal prefix of a glob (the segments before the first wildcard) and the
    // wildcard segments after it.
    fs::path prefix;
    std::vector<std::string> pattern;
    for (const auto& seg : fs::path(input)) {
      if (!pattern.empty() || HasGlobWildcard(seg.string())) {
        pattern.push_back(seg.string());
      } else {
        prefix /= seg;
      }
    }
    if (prefix.empty()) prefix = ".";
    const fs::path base = Resolved(prefix.string());
    auto conflict = [&](const char* how) {
      return arrow::Status::Invalid("output folder '", output_dir, "' ", how, " input '",
                                    input, "': the job would read its own output; choose "
                                    "an output folder outside the inputs");
    };
    if (auto below = SegmentsBelow(out, base)) {
      if (pattern.empty()) {
        if (below->empty()) return conflict("is the");
        return conflict("is inside the");
      }
      // A glob reads the output when it can match the output folder, one of its
      // parents below the prefix (a matched folder is read whole), or files inside it.
      bool any_depth = false;
      for (const auto& seg : pattern) any_depth = any_depth || seg == "**";
      bool matches = !below->empty();
      const size_t n = std::min(pattern.size(), below->size());
      for (size_t k = 0; k < n && matches && !any_depth; ++k) {
        matches = ::fnmatch(pattern[k].c_str(), (*below)[k].c_str(), FNM_PERIOD) == 0;
      }
      if (any_depth || matches) return conflict("may be read by the");
    }
    if (SegmentsBelow(base, out)) {
      return arrow::Status::Invalid("input '", input, "' is inside the output folder '",
                                    output_dir, "': the job would replace what it reads; "
                                    "choose an output folder outside the inputs");
    }
  }
  return arrow::Status::OK();
}

}  // namespace dlprep::io
