#include "dlprep/source.h"

namespace dlprep {

std::optional<TfRecordCompression> TfRecordCompressionFromName(std::string_view name) {
  if (name == "auto") return TfRecordCompression::kAuto;
  if (name == "none") return TfRecordCompression::kNone;
  if (name == "gzip" || name == "GZIP") return TfRecordCompression::kGzip;
  if (name == "zlib" || name == "ZLIB") return TfRecordCompression::kZlib;
  return std::nullopt;
}

std::optional<RecordType> RecordTypeFromName(std::string_view name) {
  if (name == "example") return RecordType::kExample;
  if (name == "sequence_example") return RecordType::kSequenceExample;
  return std::nullopt;
}

std::optional<TableFormat> TableFormatFromName(std::string_view name) {
  if (name == "parquet") return TableFormat::kParquet;
  if (name == "csv") return TableFormat::kCsv;
  if (name == "json") return TableFormat::kJsonLines;
  return std::nullopt;
}

}  // namespace dlprep
