#pragma once
// Request bodies from Arrow columns and response bodies back to Arrow columns, for the
// three protocols of `score_http` (see HttpScoreOptions for their JSON shapes).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"

namespace dlprep::http {

/// The JSON protocol spoken with the model server.
enum class Protocol { kKServeV2, kTfServing, kRecords };

/// "kserve-v2", "tfserving" or "records"; Invalid naming --protocol otherwise.
arrow::Result<Protocol> ParseProtocol(std::string_view text);
const char* ProtocolName(Protocol protocol);

/// One output column, from a spec "NAME[:TYPE]" where TYPE is float32, float64, int64
/// or string (default float32), optionally followed by "[]" (a list per row) or
/// "[d0,d1,...]" (a list per row of that shape, recorded as `dlprep.shape`).
struct OutputSpec {
  std::string name;
  enum class Type { kFloat32, kFloat64, kInt64, kString };
  Type type = Type::kFloat32;
  bool is_list = false;
  /// Per-row shape when declared ("[4,2]"); empty: any length.
  std::vector<int64_t> shape;

  /// The Arrow field of the column (list<...> with dlprep.shape when declared).
  std::shared_ptr<arrow::Field> field() const;
  /// The spec text back ("emb:float32[4,2]").
  std::string ToString() const;
};

/// Parses an output spec; Invalid naming --outputs and the expected form otherwise.
arrow::Result<OutputSpec> ParseOutputSpec(std::string_view text);

/// Writes request bodies for the input columns of batches. Made once per operator for
/// the input schema; Prepare() is called per batch, then Encode() per request.
///
/// Column types: float32, float64, int8-64, uint8-64, bool, string / large_string, and
/// list / large_list / fixed_size_list of the numeric and bool types (a tensor per row,
/// row-major, with its shape from the field's `dlprep.shape` metadata when present).
/// Per-row problems make the row fail (RowErrors), the others are sent: NaN or
/// infinity anywhere in the row (JSON has no such numbers; we do not silently write
/// null), a null inside a list, a list whose length does not match `dlprep.shape`,
/// and, for kserve-v2 only, a null value (tensors cannot hold one) or a list whose
/// length differs from the first good row of the batch when there is no
/// `dlprep.shape` (a tensor is rectangular). tfserving and records write a null value
/// as JSON null.
///
/// Not thread-safe; one per operator instance.
class RequestEncoder {
 public:
  /// TypeError naming the column when it is absent or of an unsupported type.
  static arrow::Result<std::unique_ptr<RequestEncoder>> Make(
      Protocol protocol, const std::vector<std::string>& columns,
      const arrow::Schema& schema);
  ~RequestEncoder();

  /// Takes the columns of `batch` (which must have the schema given to Make()) and
  /// checks its rows: those that can be sent go to `ok_rows` (ascending), the others
  /// to `errors` with the reason.
  arrow::Status Prepare(const arrow::RecordBatch& batch, std::vector<int64_t>* ok_rows,
                        RowErrors* errors);

  /// Appends the request body for rows `rows[0..n)` (from `ok_rows`) of the batch
  /// last given to Prepare() to `body`.
  void Encode(const int64_t* rows, int64_t n, std::string* body) const;

  struct Column;

 private:
  RequestEncoder(Protocol protocol, std::vector<Column> columns);
  Protocol protocol_;
  std::vector<Column> columns_;
};

/// Values decoded from one response for one output column, `rows` rows (never null).
struct DecodedColumn {
  std::vector<double> doubles;       // kFloat32 / kFloat64
  std::vector<int64_t> ints;         // kInt64
  std::vector<std::string> strings;  // kString
  std::vector<int64_t> offsets;      // lists: rows + 1 offsets into the values
  int64_t rows = 0;
};

/// Parses response bodies with simdjson into DecodedColumns. Any deviation from the
/// protocol is an Invalid status for the whole response naming the output (and row)
/// and what was expected, and nothing is kept from it: a response is used whole or not
/// at all, so its rows fail. Deviations: unparseable JSON, a missing field, a wrong
/// number of rows, a value of the wrong type or size, a key twice in an object (or two
/// kserve-v2 outputs of one name), a kserve-v2 shape whose size overflows int64, and
/// anything that is no value of the output's type: null, a bool, a number beyond
/// float32's range for a float32 output (it would be infinity), a fraction or a number
/// beyond int64 for an int64 output. (Numbers beyond float64's range are not JSON that
/// simdjson accepts.)
///
/// Not thread-safe (holds one reusable parser); one per operator instance.
class ResponseDecoder {
 public:
  ResponseDecoder(Protocol protocol, std::vector<OutputSpec> outputs);
  ~ResponseDecoder();

  /// Decodes `body`, the response to a request of `n` rows, into one DecodedColumn
  /// per output (in OutputSpec order). `*out` is overwritten.
  arrow::Status Decode(std::string_view body, int64_t n, std::vector<DecodedColumn>* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Concatenates decoded responses (in order) into one array per output column.
arrow::Result<std::vector<std::shared_ptr<arrow::Array>>> BuildOutputArrays(
    const std::vector<OutputSpec>& outputs,
    const std::vector<const std::vector<DecodedColumn>*>& parts);

}  // namespace dlprep::http
