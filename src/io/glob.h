#pragma once
// File listing with shell-style glob patterns, shared by the file sources.
// Internal to dlprep_io.

#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

namespace dlprep::io {

/// Expands files, directories and glob patterns into a sorted, de-duplicated list of
/// regular-file paths.
///
/// Each pattern is one of:
///  * a file: itself (even when its name starts with '.' or '_');
///  * a directory: the files directly inside it, or at all levels when `recursive`;
///  * a glob: `*`, `?` and `[...]` match within one path segment (fnmatch with
///    FNM_PERIOD, so a leading '.' must be matched explicitly, as in the shell), and a
///    segment that is exactly `**` matches zero or more directories. A glob that
///    matches a directory stands for that directory's files (as above); a trailing
///    `**` therefore lists every file below its prefix.
///
/// Only the fixed prefix directory of a glob (the segments before the first one with
/// a wildcard) is walked, and each directory is read once.
///
/// Listing a directory (or matching wildcards against its entries) skips hidden
/// entries (names starting with '.') and Spark/Hadoop metadata entries (names
/// starting with '_', such as `_SUCCESS` or `_temporary`), unless the glob segment
/// itself starts with that character. Symbolic links to files are followed; symbolic
/// links to directories are followed when named or matched by a plain segment, but
/// never descended into by `recursive` or `**` (this rules out cycles).
///
/// `name_filter`, when not empty, is a glob matched against each file's name only
/// (Spark's `pathGlobFilter`); files it rejects are dropped.
///
/// Paths keep the form of the pattern (relative patterns give relative paths), are
/// lexically normalised (no `.` segments, no doubled '/'), and are sorted bytewise.
///
/// Errors (IOError): a pattern that matches no file names the pattern, and says so
/// when a named path or the glob's prefix directory does not exist; a directory that
/// cannot be read names that directory and the system's reason.
arrow::Result<std::vector<std::string>> ExpandPaths(
    const std::vector<std::string>& patterns, bool recursive,
    const std::string& name_filter);

/// True when `segment` contains a glob wildcard (`*`, `?` or `[`).
bool HasGlobWildcard(const std::string& segment);

/// Invalid when the output folder is one of the inputs or inside one (the job would
/// read its own output: a folder input, or a glob that can match the output folder or
/// files in it), or when an input is inside the output folder (--overwrite would
/// replace what the job reads). Paths are compared absolute, with symbolic links
/// resolved as far as they exist.
arrow::Status CheckOutputOutsideInputs(const std::vector<std::string>& inputs,
                                       const std::string& output_dir);

}  // namespace dlprep::io
