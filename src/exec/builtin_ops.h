#pragma once
// Built-in light operators: select, rename, cast, filter, regex_extract, split and
// broadcast join. Each factory validates its options on its own (empty lists, bad type
// names, fractions that do not sum to 1, a pattern without exactly one capture group);
// everything that depends on the input (missing columns, types) is checked when the
// executor plans the run (OutputField / OutputSchema), before any batch, with an error
// that names the operator, the option and the column, and lists the available columns.
//
// Operators returned here are immutable once made; the batch and scalar ones may be
// shared by every worker (thread-safe), the stateful ones come as factories.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"
#include "dlprep/pipeline.h"
#include "dlprep/source.h"

namespace dlprep::exec {

/// `select`: keeps `columns`, in that order (a column may not be named twice).
struct SelectOptions {
  std::vector<std::string> columns;
};
/// A batch operator named "select". Invalid when `columns` is empty or repeats a name.
arrow::Result<std::shared_ptr<BatchOperator>> MakeSelect(SelectOptions options);

/// `rename`: old name -> new name; other columns keep their names and position.
struct RenameOptions {
  std::vector<std::pair<std::string, std::string>> columns;
};
/// A batch operator named "rename" (zero-copy: only the schema changes; field metadata
/// is kept). Invalid when the map is empty, renames a column twice or gives an empty
/// name; planning fails when an old name is missing or a new name collides.
arrow::Result<std::shared_ptr<BatchOperator>> MakeRename(RenameOptions options);

/// Parses an Arrow type name: bool, int8..int64, uint8..uint64, float16, float32
/// (float), float64 (double), string (utf8), large_string, binary, large_binary,
/// date32, date64, timestamp[s|ms|us|ns] and timestamp[unit, TZ] (e.g. timestamp[us,
/// UTC]). Invalid, listing these, for anything else.
arrow::Result<std::shared_ptr<arrow::DataType>> ParseTypeName(const std::string& name);

/// `cast`: column -> Arrow type name (see ParseTypeName).
struct CastOptions {
  std::vector<std::pair<std::string, std::string>> columns;
};
/// A batch operator named "cast" using arrow::compute::Cast (safe casts: overflow,
/// truncation and unparsable strings are errors). Nulls stay null; field names,
/// nullability and metadata are kept. A value that fails to cast fails the batch with
/// an error naming the column, the row (0-based, in the batch) and Arrow's reason.
arrow::Result<std::shared_ptr<BatchOperator>> MakeCast(CastOptions options);

/// `filter`: keeps the rows where `expr` (see ParseFilterExpression) is true; rows where
/// it is false or null are dropped.
struct FilterOptions {
  std::string expr;
};
/// A batch operator named "filter". Invalid (naming the position) when `expr` does not
/// parse; planning fails when it names a missing column (listing the available ones)
/// or is not boolean.
arrow::Result<std::shared_ptr<BatchOperator>> MakeFilter(FilterOptions options);

/// What regex_extract does with a non-null value that does not match.
enum class OnMismatch { kNull, kError };

/// `regex_extract`: the first (only) capture group of `pattern` (RE2 syntax, matched
/// anywhere in the value) applied to string column `column`, as a new string column
/// `output`.
struct RegexExtractOptions {
  std::string column;
  std::string pattern;
  std::string output;
  /// kNull: a non-matching value gives null. kError: the row is reported failed
  /// through RowErrors (the executor counts it and hands it to the error sink) and left
  /// out of the output. A null input value gives null in both modes.
  OnMismatch on_mismatch = OnMismatch::kNull;
};
/// A step named "regex_extract": a scalar operator with OnMismatch::kNull, a stateful
/// one with kError (RowErrors are a stateful operator's channel). Invalid when the
/// pattern does not compile or has other than exactly one capture group, or an option
/// is empty.
arrow::Result<PipelineStep> MakeRegexExtract(RegexExtractOptions options);

/// `split`: deterministic train/validation/test assignment from a hash of a key column.
struct SplitOptions {
  std::string key;
  /// Split name -> fraction, in this order; each in [0, 1], summing to 1 within 1e-9.
  std::vector<std::pair<std::string, double>> fractions;
  uint64_t seed = 0;
  std::string output = "split";
};
/// A scalar operator named "split" appending string column `output`. The key's bytes
/// (the little-endian value for integers, bool, dates and timestamps; the UTF-8 / raw
/// bytes for string and binary) are hashed with SplitHash(seed), the hash is mapped to
/// u in [0, 1) and the row gets the first split whose cumulative fraction exceeds u.
/// The same key and seed always give the same split, whatever the batch, worker or
/// run. A null key gives a null split.
arrow::Result<std::shared_ptr<ScalarOperator>> MakeSplit(SplitOptions options);

/// The stable 64-bit hash of `split`: FNV-1a over the 8 little-endian bytes of `seed`
/// followed by `data`, then a 64-bit avalanche finalizer (murmur3's fmix64). Fixed
/// forever: changing it would move rows between train and test.
uint64_t SplitHash(const void* data, size_t size, uint64_t seed);

/// `join`: left join of every batch with a small side table held in memory.
struct BroadcastJoinOptions {
  /// The side table's source (any dlprep source). Must not be null.
  std::shared_ptr<Source> side;
  /// A name for the side table in messages (its path).
  std::string side_name;
  /// Key columns, present in both inputs with the same type (integers, bool, string,
  /// binary, date, timestamp).
  std::vector<std::string> on;
  /// Refuse a side table whose in-memory size exceeds this many bytes.
  int64_t max_bytes = int64_t{256} << 20;
};
/// A stateful step named "join". The side table is read once, by the first worker's
/// Open() (the other workers' Open() waits for it and shares it): a hash map from key to
/// side-table row. Process() appends the side table's non-key columns, taken by that
/// map; a left row without a match, or with a null in a key column, gets nulls there.
/// Errors: the side table over `max_bytes` (naming the file and size), a key present
/// twice in the side table (naming the key), a key column missing or of another type in
/// either input, a non-key side column whose name the input already has.
arrow::Result<StatefulOperatorFactory> MakeBroadcastJoin(BroadcastJoinOptions options);

/// Appends `step` to `pipeline` by its kind (Map or MapStateful).
Pipeline& AddStep(Pipeline& pipeline, PipelineStep step);

}  // namespace dlprep::exec
