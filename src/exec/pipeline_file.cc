#include "exec/pipeline_file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/text.h"
#include "core/units.h"
#include "exec/builtin_ops.h"

namespace dlprep::exec {

namespace fs = std::filesystem;

struct ConfigNode::Impl {
  YAML::Node node;  // a mapping (or null: no options)
  std::string file;
  std::string base_dir;
  std::string context;
  std::vector<std::string> asked;  // keys a getter asked for, in order
  YAML::Node normalized = YAML::Node(YAML::NodeType::Map);

  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
  // The mark of `key` itself, else of the mapping.
  YAML::Mark MarkOf(const std::string& key) const {
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == key) return it->first.Mark();
      }
    }
    return node.Mark();
  }
  // The value of `key`, marking it asked; an undefined node when absent.
  YAML::Node Get(const std::string& key) {
    if (std::find(asked.begin(), asked.end(), key) == asked.end()) asked.push_back(key);
    if (!node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }
};

// Construction and internals for this file only.
struct ConfigNodeAccess {
  static ConfigNode Make(YAML::Node node, std::string file, std::string base_dir,
                         std::string context) {
    auto impl = std::make_unique<ConfigNode::Impl>();
    impl->node = std::move(node);
    impl->file = std::move(file);
    impl->base_dir = std::move(base_dir);
    impl->context = std::move(context);
    return ConfigNode(std::move(impl));
  }
  static ConfigNode::Impl& Of(ConfigNode& n) { return *n.impl_; }
  static const ConfigNode::Impl& Of(const ConfigNode& n) { return *n.impl_; }
};

ConfigNode::ConfigNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConfigNode::ConfigNode(ConfigNode&&) noexcept = default;
ConfigNode& ConfigNode::operator=(ConfigNode&&) noexcept = default;
ConfigNode::~ConfigNode() = default;

const std::string& ConfigNode::context() const { return impl_->context; }

bool ConfigNode::Has(const std::string& key) const {
  if (!impl_->node.IsMap()) return false;
  for (auto it = impl_->node.begin(); it != impl_->node.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return true;
  }
  return false;
}

arrow::Status ConfigNode::OptionError(const std::string& key,
                                      const std::string& message) const {
  return arrow::Status::Invalid(impl_->Where(impl_->MarkOf(key)), ": ", impl_->context,
                                ": option '", key, "': ", message);
}

namespace {

// Keys of the mapping that no getter asked for (yet), in file order.
std::vector<std::string> Unasked(const ConfigNode::Impl& impl) {
  std::vector<std::string> out;
  if (!impl.node.IsMap()) return out;
  for (auto it = impl.node.begin(); it != impl.node.end(); ++it) {
    std::string k = it->first.IsScalar() ? it->first.Scalar() : "?";
    if (std::find(impl.asked.begin(), impl.asked.end(), k) != impl.asked.end()) continue;
    out.push_back(k);
  }
  return out;
}

// A required key is absent. Keys not asked for yet may be valid ones a later getter
// reads, so only one that looks like a misspelling of `key` is mentioned.
arrow::Status Missing(const ConfigNode& n, const std::string& key) {
  const auto& impl = ConfigNodeAccess::Of(n);
  std::string typo;
  for (const auto& k : Unasked(impl)) {
    if (ClosestMatch(k, {key}) == key) {
      typo = k;
      break;
    }
  }
  if (!typo.empty()) {
    return arrow::Status::Invalid(impl.Where(impl.MarkOf(typo)), ": ", impl.context,
                                  ": missing option '", key, "' (found '", typo,
                                  "': did you mean '", key, "'?)");
  }
  return arrow::Status::Invalid(impl.Where(impl.node.Mark()), ": ", impl.context,
                                ": missing option '", key, "'");
}

template <typename T>
arrow::Result<T> ScalarAs(const ConfigNode& n, const std::string& key, const YAML::Node& v,
                          const char* expected) {
  if (v.IsScalar()) {
    try {
      return v.as<T>();
    } catch (const YAML::Exception&) {
    }
  }
  std::string got = v.IsScalar() ? "'" + v.Scalar() + "'" : "a list or mapping";
  return n.OptionError(key, std::string("expected ") + expected + ", got " + got);
}

// "option max_bytes: 'x' is not ..." -> "'x' is not ...", for OptionError's own prefix.
std::string WithoutOptionPrefix(const std::string& message, const std::string& key) {
  std::string prefix = "option " + key + ": ";
  if (message.rfind(prefix, 0) == 0) return message.substr(prefix.size());
  return message;
}

}  // namespace

arrow::Result<std::string> ConfigNode::GetString(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  ARROW_ASSIGN_OR_RAISE(std::string s, ScalarAs<std::string>(*this, key, v, "text"));
  impl_->normalized[key] = s;
  return s;
}

arrow::Result<std::string> ConfigNode::GetString(const std::string& key,
                                                 const std::string& def) {
  if (!Has(key)) {
    impl_->Get(key);
    impl_->normalized[key] = def;
    return def;
  }
  return GetString(key);
}

arrow::Result<int64_t> ConfigNode::GetInt(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  ARROW_ASSIGN_OR_RAISE(int64_t i, ScalarAs<int64_t>(*this, key, v, "an integer"));
  impl_->normalized[key] = i;
  return i;
}

arrow::Result<int64_t> ConfigNode::GetInt(const std::string& key, int64_t def) {
  if (!Has(key)) {
    impl_->Get(key);
    impl_->normalized[key] = def;
    return def;
  }
  return GetInt(key);
}

arrow::Result<double> ConfigNode::GetDouble(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  ARROW_ASSIGN_OR_RAISE(double d, ScalarAs<double>(*this, key, v, "a number"));
  impl_->normalized[key] = d;
  return d;
}

arrow::Result<double> ConfigNode::GetDouble(const std::string& key, double def) {
  if (!Has(key)) {
    impl_->Get(key);
    impl_->normalized[key] = def;
    return def;
  }
  return GetDouble(key);
}

arrow::Result<bool> ConfigNode::GetBool(const std::string& key, bool def) {
  YAML::Node v = impl_->Get(key);
  bool b = def;
  if (v.IsDefined() && !v.IsNull()) {
    ARROW_ASSIGN_OR_RAISE(b, ScalarAs<bool>(*this, key, v, "true or false"));
  }
  impl_->normalized[key] = b;
  return b;
}

arrow::Result<int64_t> ConfigNode::GetByteSize(const std::string& key, int64_t def) {
  YAML::Node v = impl_->Get(key);
  int64_t n = def;
  if (v.IsDefined() && !v.IsNull()) {
    ARROW_ASSIGN_OR_RAISE(std::string text, ScalarAs<std::string>(*this, key, v, "a size"));
    auto parsed = ParseByteSize(text, key);
    if (!parsed.ok()) {
      return OptionError(key, WithoutOptionPrefix(parsed.status().message(), key));
    }
    n = *parsed;
  }
  impl_->normalized[key] = n;
  return n;
}

arrow::Result<double> ConfigNode::GetDuration(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  ARROW_ASSIGN_OR_RAISE(std::string text,
                        ScalarAs<std::string>(*this, key, v, "a duration such as 30s"));
  auto parsed = ParseDuration(text, key);
  if (!parsed.ok()) {
    return OptionError(key, WithoutOptionPrefix(parsed.status().message(), key));
  }
  impl_->normalized[key] = text;
  return *parsed;
}

arrow::Result<double> ConfigNode::GetDuration(const std::string& key, double def) {
  if (!Has(key)) {
    impl_->Get(key);
    impl_->normalized[key] = def;
    return def;
  }
  return GetDuration(key);
}

arrow::Result<int64_t> ConfigNode::GetWholeSeconds(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  ARROW_ASSIGN_OR_RAISE(std::string text,
                        ScalarAs<std::string>(*this, key, v, "a duration such as 14d"));
  auto parsed = ParseWholeSeconds(text, key);
  if (!parsed.ok()) {
    return OptionError(key, WithoutOptionPrefix(parsed.status().message(), key));
  }
  impl_->normalized[key] = text;
  return *parsed;
}

arrow::Result<int64_t> ConfigNode::GetWholeSeconds(const std::string& key, int64_t def) {
  if (!Has(key)) {
    impl_->Get(key);
    impl_->normalized[key] = def;
    return def;
  }
  return GetWholeSeconds(key);
}

arrow::Result<std::string> ConfigNode::GetEnum(const std::string& key,
                                               const std::vector<std::string>& accepted) {
  ARROW_ASSIGN_OR_RAISE(std::string text, GetString(key));
  for (const auto& a : accepted) {
    if (EqualsIgnoreCase(text, a)) {
      impl_->normalized[key] = a;
      return a;
    }
  }
  std::string list;
  for (size_t i = 0; i < accepted.size(); ++i) {
    list += (i == 0 ? "" : (i + 1 == accepted.size() ? " or " : ", ")) + accepted[i];
  }
  return OptionError(key, "'" + text + "' is not accepted; expected " + list);
}

arrow::Result<std::string> ConfigNode::GetEnum(const std::string& key,
                                               const std::vector<std::string>& accepted,
                                               const std::string& def) {
  if (!Has(key)) {
    impl_->Get(key);
    impl_->normalized[key] = def;
    return def;
  }
  return GetEnum(key, accepted);
}

arrow::Result<std::vector<std::string>> ConfigNode::GetStringList(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  std::vector<std::string> out;
  if (v.IsScalar()) {
    out.push_back(v.Scalar());
  } else if (v.IsSequence()) {
    for (const auto& item : v) {
      if (!item.IsScalar()) return OptionError(key, "expected a list of names");
      out.push_back(item.Scalar());
    }
  } else {
    return OptionError(key, "expected a list, e.g. [a, b]");
  }
  YAML::Node seq(YAML::NodeType::Sequence);
  for (const auto& s : out) seq.push_back(s);
  seq.SetStyle(YAML::EmitterStyle::Flow);
  impl_->normalized[key] = seq;
  return out;
}

arrow::Result<std::vector<std::string>> ConfigNode::GetStringList(
    const std::string& key, std::vector<std::string> def) {
  if (Has(key)) return GetStringList(key);
  impl_->Get(key);
  YAML::Node seq(YAML::NodeType::Sequence);
  for (const auto& s : def) seq.push_back(s);
  seq.SetStyle(YAML::EmitterStyle::Flow);
  impl_->normalized[key] = seq;
  return def;
}

arrow::Result<std::vector<std::pair<std::string, std::string>>> ConfigNode::GetStringMap(
    const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  if (!v.IsMap()) return OptionError(key, "expected a mapping, e.g. {a: b}");
  std::vector<std::pair<std::string, std::string>> out;
  YAML::Node norm(YAML::NodeType::Map);
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->first.IsScalar() || !it->second.IsScalar()) {
      return OptionError(key, "expected a mapping of names to names, e.g. {a: b}");
    }
    out.emplace_back(it->first.Scalar(), it->second.Scalar());
    norm[it->first.Scalar()] = it->second.Scalar();
  }
  norm.SetStyle(YAML::EmitterStyle::Flow);
  impl_->normalized[key] = norm;
  return out;
}

arrow::Result<std::vector<std::pair<std::string, double>>> ConfigNode::GetNumberMap(
    const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  if (!v.IsMap()) return OptionError(key, "expected a mapping, e.g. {train: 0.8, test: 0.2}");
  std::vector<std::pair<std::string, double>> out;
  YAML::Node norm(YAML::NodeType::Map);
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->first.IsScalar()) return OptionError(key, "expected names as keys");
    ARROW_ASSIGN_OR_RAISE(
        double d, ScalarAs<double>(*this, key + "." + it->first.Scalar(), it->second, "a number"));
    out.emplace_back(it->first.Scalar(), d);
    norm[it->first.Scalar()] = d;
  }
  norm.SetStyle(YAML::EmitterStyle::Flow);
  impl_->normalized[key] = norm;
  return out;
}

arrow::Result<ConfigNode> ConfigNode::GetMap(const std::string& key) {
  YAML::Node v = impl_->Get(key);
  if (!v.IsDefined() || v.IsNull()) return Missing(*this, key);
  if (!v.IsMap()) return OptionError(key, "expected a mapping of options");
  ConfigNode child = ConfigNodeAccess::Make(v, impl_->file, impl_->base_dir,
                                            impl_->context == "pipeline"
                                                ? key
                                                : impl_->context + ": " + key);
  // The child's normalized node is shared, so what its getters record shows here.
  impl_->normalized[key] = child.impl_->normalized;
  return child;
}

std::string ConfigNode::ResolvePath(const std::string& path) const {
  fs::path p(path);
  if (p.is_absolute() || impl_->base_dir.empty()) return path;
  return (fs::path(impl_->base_dir) / p).lexically_normal().string();
}

arrow::Status ConfigNode::Finish() const {
  std::vector<std::string> unknown = Unasked(*impl_);
  if (unknown.empty()) return arrow::Status::OK();
  std::string names;
  for (const auto& k : unknown) {
    names += (names.empty() ? "'" : ", '") + k + "'";
    std::string guess = ClosestMatch(k, impl_->asked);
    if (!guess.empty()) names += " (did you mean '" + guess + "'?)";
  }
  std::string known;
  for (const auto& a : impl_->asked) known += (known.empty() ? "" : ", ") + a;
  return arrow::Status::Invalid(impl_->Where(impl_->MarkOf(unknown.front())), ": ",
                                impl_->context, ": unknown option",
                                unknown.size() > 1 ? "s " : " ", names,
                                "; expected one of: ", known.empty() ? "(none)" : known);
}

// ----------------------------------------------------------------------- sources

arrow::Result<std::shared_ptr<Source>> OpenSourceFromConfig(ConfigNode* n) {
  ARROW_ASSIGN_OR_RAISE(std::string format,
                        n->GetEnum("format", {"parquet", "csv", "json", "tfrecord", "binary"}));
  ARROW_ASSIGN_OR_RAISE(std::vector<std::string> paths, n->GetStringList("paths"));
  if (paths.empty()) return n->OptionError("paths", "expected at least one path");
  for (auto& p : paths) p = n->ResolvePath(p);
  // Record the resolved paths in the normalized pipeline.
  {
    auto& impl = ConfigNodeAccess::Of(*n);
    YAML::Node seq(YAML::NodeType::Sequence);
    for (const auto& p : paths) seq.push_back(p);
    seq.SetStyle(YAML::EmitterStyle::Flow);
    impl.normalized["paths"] = seq;
  }
  if (format == "binary") {
    BinaryFilesOptions o;
    o.paths = paths;
    ARROW_ASSIGN_OR_RAISE(o.name_filter, n->GetString("name_filter", ""));
    ARROW_ASSIGN_OR_RAISE(o.recursive, n->GetBool("recursive", false));
    ARROW_ASSIGN_OR_RAISE(o.read_content, n->GetBool("read_content", true));
    ARROW_ASSIGN_OR_RAISE(o.max_file_size, n->GetByteSize("max_file_size", o.max_file_size));
    ARROW_ASSIGN_OR_RAISE(o.files_per_partition,
                          n->GetInt("files_per_partition", o.files_per_partition));
    ARROW_ASSIGN_OR_RAISE(o.batch_rows, n->GetInt("batch_rows", o.batch_rows));
    if (o.files_per_partition <= 0) {
      return n->OptionError("files_per_partition", "expected a positive number");
    }
    if (o.batch_rows <= 0) return n->OptionError("batch_rows", "expected a positive number");
    return OpenBinaryFiles(o);
  }
  if (format == "tfrecord") {
    TfRecordSourceOptions o;
    o.paths = paths;
    ARROW_ASSIGN_OR_RAISE(o.columns, n->GetStringList("columns", {}));
    ARROW_ASSIGN_OR_RAISE(
        std::string compression,
        n->GetEnum("compression", {"auto", "none", "gzip", "zlib"}, "auto"));
    o.compression = *TfRecordCompressionFromName(compression);
    ARROW_ASSIGN_OR_RAISE(
        std::string rt,
        n->GetEnum("record_type", {"example", "sequence_example"}, "example"));
    o.record_type = *RecordTypeFromName(rt);
    ARROW_ASSIGN_OR_RAISE(o.skip_corrupt, n->GetBool("skip_corrupt", false));
    ARROW_ASSIGN_OR_RAISE(o.batch_rows, n->GetInt("batch_rows", o.batch_rows));
    if (o.batch_rows <= 0) return n->OptionError("batch_rows", "expected a positive number");
    return OpenTfRecordSource(o);
  }
  TableSourceOptions o;
  o.paths = paths;
  o.format = *TableFormatFromName(format);
  ARROW_ASSIGN_OR_RAISE(o.columns, n->GetStringList("columns", {}));
  ARROW_ASSIGN_OR_RAISE(o.hive_partitioning, n->GetBool("hive_partitioning", true));
  ARROW_ASSIGN_OR_RAISE(o.batch_rows, n->GetInt("batch_rows", o.batch_rows));
  if (o.batch_rows <= 0) return n->OptionError("batch_rows", "expected a positive number");
  return OpenTableSource(o);
}

arrow::Result<WriteOptions> WriteOptionsFromConfig(ConfigNode* n) {
  WriteOptions o;
  ARROW_ASSIGN_OR_RAISE(std::string path, n->GetString("path"));
  o.output_dir = n->ResolvePath(path);
  ConfigNodeAccess::Of(*n).normalized["path"] = o.output_dir;
  ARROW_ASSIGN_OR_RAISE(std::string format,
                        n->GetEnum("format", {"tfrecord", "parquet", "csv"}, "tfrecord"));
  if (format == "tfrecord") {
    o.format = OutputFormat::kTfRecord;
  } else if (format == "parquet") {
    o.format = OutputFormat::kParquet;
  } else {
    o.format = OutputFormat::kCsv;
  }
  ARROW_ASSIGN_OR_RAISE(std::string compression,
                        n->GetEnum("compression", {"none", "gzip", "zlib"}, "none"));
  o.compression = *TfRecordCompressionFromName(compression);
  if (o.format != OutputFormat::kTfRecord && o.compression != TfRecordCompression::kNone) {
    return n->OptionError("compression", "applies to format tfrecord only");
  }
  ARROW_ASSIGN_OR_RAISE(
      std::string rt, n->GetEnum("record_type", {"example", "sequence_example"}, "example"));
  o.record_type = *RecordTypeFromName(rt);
  if (o.format != OutputFormat::kTfRecord && o.record_type != RecordType::kExample) {
    return n->OptionError("record_type", "applies to format tfrecord only");
  }
  ARROW_ASSIGN_OR_RAISE(o.shards, n->GetInt("shards", 0));
  ARROW_ASSIGN_OR_RAISE(o.max_rows_per_file, n->GetInt("max_rows_per_file", 0));
  ARROW_ASSIGN_OR_RAISE(o.max_bytes_per_file, n->GetByteSize("max_bytes_per_file", 0));
  ARROW_ASSIGN_OR_RAISE(o.overwrite, n->GetBool("overwrite", false));
  if (o.shards < 0) return n->OptionError("shards", "expected 0 (automatic) or more");
  if (o.max_rows_per_file < 0) return n->OptionError("max_rows_per_file", "expected >= 0");
  if (o.max_bytes_per_file < 0) return n->OptionError("max_bytes_per_file", "expected >= 0");
  if (o.shards > 0 && (o.max_rows_per_file > 0 || o.max_bytes_per_file > 0)) {
    return n->OptionError("shards",
                          "cannot be combined with max_rows_per_file or max_bytes_per_file; "
                          "choose a file count or a file size");
  }
  return o;
}

// ------------------------------------------------------------------------ registry

namespace {

PipelineStep BatchStep(std::shared_ptr<BatchOperator> op) {
  PipelineStep s;
  s.kind = PipelineStep::Kind::kBatch;
  s.batch = std::move(op);
  return s;
}

PipelineStep ScalarStep(std::shared_ptr<ScalarOperator> op) {
  PipelineStep s;
  s.kind = PipelineStep::Kind::kScalar;
  s.scalar = std::move(op);
  return s;
}

void RegisterBuiltins(std::map<std::string, StepFactory>* r) {
  (*r)["select"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    SelectOptions opts;
    ARROW_ASSIGN_OR_RAISE(opts.columns, o->GetStringList("columns"));
    ARROW_ASSIGN_OR_RAISE(auto op, MakeSelect(std::move(opts)));
    return BatchStep(std::move(op));
  };
  (*r)["rename"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    RenameOptions opts;
    ARROW_ASSIGN_OR_RAISE(opts.columns, o->GetStringMap("columns"));
    ARROW_ASSIGN_OR_RAISE(auto op, MakeRename(std::move(opts)));
    return BatchStep(std::move(op));
  };
  (*r)["cast"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    CastOptions opts;
    ARROW_ASSIGN_OR_RAISE(opts.columns, o->GetStringMap("columns"));
    ARROW_ASSIGN_OR_RAISE(auto op, MakeCast(std::move(opts)));
    return BatchStep(std::move(op));
  };
  (*r)["filter"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    FilterOptions opts;
    ARROW_ASSIGN_OR_RAISE(opts.expr, o->GetString("expr"));
    ARROW_ASSIGN_OR_RAISE(auto op, MakeFilter(std::move(opts)));
    return BatchStep(std::move(op));
  };
  (*r)["regex_extract"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    RegexExtractOptions opts;
    ARROW_ASSIGN_OR_RAISE(opts.column, o->GetString("column"));
    ARROW_ASSIGN_OR_RAISE(opts.pattern, o->GetString("pattern"));
    ARROW_ASSIGN_OR_RAISE(opts.output, o->GetString("output"));
    ARROW_ASSIGN_OR_RAISE(std::string mismatch,
                          o->GetEnum("on_mismatch", {"null", "error"}, "null"));
    opts.on_mismatch = mismatch == "null" ? OnMismatch::kNull : OnMismatch::kError;
    return MakeRegexExtract(std::move(opts));
  };
  (*r)["split"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    SplitOptions opts;
    ARROW_ASSIGN_OR_RAISE(opts.key, o->GetString("key"));
    ARROW_ASSIGN_OR_RAISE(opts.fractions, o->GetNumberMap("fractions"));
    ARROW_ASSIGN_OR_RAISE(int64_t seed, o->GetInt("seed", 0));
    if (seed < 0) return o->OptionError("seed", "expected a non-negative integer");
    opts.seed = static_cast<uint64_t>(seed);
    ARROW_ASSIGN_OR_RAISE(opts.output, o->GetString("output", "split"));
    ARROW_ASSIGN_OR_RAISE(auto op, MakeSplit(std::move(opts)));
    return ScalarStep(std::move(op));
  };
  (*r)["join"] = [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    BroadcastJoinOptions opts;
    ARROW_ASSIGN_OR_RAISE(ConfigNode side, o->GetMap("source"));
    ARROW_ASSIGN_OR_RAISE(opts.side, OpenSourceFromConfig(&side));
    ARROW_RETURN_NOT_OK(side.Finish());
    for (const auto& p : ConfigNodeAccess::Of(side).normalized["paths"]) {
      opts.side_name += (opts.side_name.empty() ? "" : ", ") + p.Scalar();
    }
    ARROW_ASSIGN_OR_RAISE(opts.on, o->GetStringList("on"));
    ARROW_ASSIGN_OR_RAISE(opts.max_bytes, o->GetByteSize("max_bytes", opts.max_bytes));
    PipelineStep s;
    s.kind = PipelineStep::Kind::kStateful;
    ARROW_ASSIGN_OR_RAISE(s.stateful, MakeBroadcastJoin(std::move(opts)));
    return s;
  };
}

std::mutex g_registry_mu;

// The registry, with the built-ins; callers hold g_registry_mu.
std::map<std::string, StepFactory>& Registry() {
  static std::map<std::string, StepFactory>* registry = [] {
    auto* r = new std::map<std::string, StepFactory>();
    RegisterBuiltins(r);
    return r;
  }();
  return *registry;
}

arrow::Result<StepFactory> FindStep(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto& r = Registry();
  auto it = r.find(name);
  if (it == r.end()) return arrow::Status::KeyError(name);
  return it->second;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// " (did you mean 'split'?)" for a misspelt step name, else "".
std::string StepSuggestion(const std::string& name) {
  std::string guess = ClosestMatch(name, RegisteredSteps());
  return guess.empty() ? "" : " (did you mean '" + guess + "'?)";
}

std::string WhereMark(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null()) return file;
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// Prefixes an operator's own error ("split: option 'fractions' ...") with the location
// of the option it names, else of the step.
arrow::Status LocateStepError(const arrow::Status& st, const ConfigNode& node,
                              const std::string& file, const std::string& context,
                              const YAML::Mark& step_mark) {
  const std::string& msg = st.message();
  if (msg.rfind(file + ":", 0) == 0) return st;  // already located
  YAML::Mark mark = step_mark;
  size_t at = msg.find("option '");
  if (at != std::string::npos) {
    size_t end = msg.find('\'', at + 8);
    std::string key = msg.substr(at + 8, end == std::string::npos ? 0 : end - at - 8);
    const auto& impl = ConfigNodeAccess::Of(node);
    if (node.Has(key)) mark = impl.MarkOf(key);
  }
  return st.WithMessage(WhereMark(file, mark), ": ", context, ": ", msg);
}

// yaml-cpp keeps every entry of a mapping and lookups find the first, so a repeated key
// would be silently ignored: refuse it, at the repeat, naming the first one's line.
arrow::Status CheckDuplicateKeys(const YAML::Node& node, const std::string& file) {
  if (node.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar()) {
        auto [at, inserted] = seen.emplace(it->first.Scalar(), it->first.Mark());
        if (!inserted) {
          return arrow::Status::Invalid(
              WhereMark(file, it->first.Mark()), ": duplicate key '", it->first.Scalar(),
              "' (first at line ", at->second.line + 1,
              "); a key may appear once in a mapping");
        }
      }
      ARROW_RETURN_NOT_OK(CheckDuplicateKeys(it->second, file));
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) ARROW_RETURN_NOT_OK(CheckDuplicateKeys(item, file));
  }
  return arrow::Status::OK();
}

arrow::Result<PipelineFile> Parse(const std::string& text, const std::string& name,
                                  const std::string& base_dir, const PipelineParts& parts) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return arrow::Status::Invalid(WhereMark(name, e.mark), ": not valid YAML: ", e.msg);
  }
  if (!root.IsMap()) {
    return arrow::Status::Invalid(name,
                                  ": expected a mapping with 'source', 'steps' and 'sink'");
  }
  ARROW_RETURN_NOT_OK(CheckDuplicateKeys(root, name));
  ConfigNode top = ConfigNodeAccess::Make(root, name, base_dir, "pipeline");
  PipelineFile out;
  YAML::Node normalized(YAML::NodeType::Map);

  if (parts.source || top.Has("source")) {
    ARROW_ASSIGN_OR_RAISE(ConfigNode source, top.GetMap("source"));
    ARROW_ASSIGN_OR_RAISE(out.source, OpenSourceFromConfig(&source));
    ARROW_RETURN_NOT_OK(source.Finish());
    normalized["source"] = ConfigNodeAccess::Of(source).normalized;
  }

  YAML::Node steps = ConfigNodeAccess::Of(top).Get("steps");
  YAML::Node steps_norm(YAML::NodeType::Sequence);
  if (steps.IsDefined() && !steps.IsNull()) {
    if (!steps.IsSequence()) {
      return arrow::Status::Invalid(WhereMark(name, steps.Mark()),
                                    ": 'steps' must be a list of steps, e.g. "
                                    "- filter: {expr: \"x > 3\"}");
    }
    int index = 0;
    for (const YAML::Node& item : steps) {
      ++index;
      std::string where = WhereMark(name, item.Mark());
      if (!item.IsMap() || item.size() != 1) {
        return arrow::Status::Invalid(where, ": step ", index,
                                      " must be a mapping with exactly one step name, e.g. "
                                      "- select: {columns: [a, b]}");
      }
      auto entry = item.begin();
      std::string step_name = entry->first.Scalar();
      auto factory = FindStep(step_name);
      if (!factory.ok()) {
        return arrow::Status::Invalid(WhereMark(name, entry->first.Mark()), ": step ", index,
                                      ": unknown step '", step_name, "'",
                                      StepSuggestion(step_name),
                                      "; known steps: ", JoinNames(RegisteredSteps()));
      }
      if (!entry->second.IsNull() && !entry->second.IsMap()) {
        return arrow::Status::Invalid(WhereMark(name, entry->second.Mark()), ": step ", index,
                                      " (", step_name,
                                      "): expected a mapping of options, e.g. {column: x}");
      }
      std::string context = "step " + std::to_string(index) + " (" + step_name + ")";
      ConfigNode options = ConfigNodeAccess::Make(entry->second, name, base_dir, context);
      auto step = (*factory)(&options);
      if (!step.ok()) {
        return LocateStepError(step.status(), options, name, context, entry->first.Mark());
      }
      ARROW_RETURN_NOT_OK(options.Finish());
      out.steps.push_back(*std::move(step));
      YAML::Node one(YAML::NodeType::Map);
      one[step_name] = ConfigNodeAccess::Of(options).normalized;
      steps_norm.push_back(one);
    }
  }
  normalized["steps"] = steps_norm;

  if (parts.sink || top.Has("sink")) {
    ARROW_ASSIGN_OR_RAISE(ConfigNode sink, top.GetMap("sink"));
    ARROW_ASSIGN_OR_RAISE(out.write, WriteOptionsFromConfig(&sink));
    ARROW_RETURN_NOT_OK(sink.Finish());
    normalized["sink"] = ConfigNodeAccess::Of(sink).normalized;
  }
  // How many failed rows the job may have and still commit (RunOptions).
  ARROW_ASSIGN_OR_RAISE(out.max_error_rate,
                        top.GetDouble("max_error_rate", kDefaultMaxErrorRate));
  if (!(out.max_error_rate >= 0 && out.max_error_rate <= 1)) {
    return top.OptionError("max_error_rate", "expected a fraction from 0 to 1");
  }
  ARROW_ASSIGN_OR_RAISE(out.max_errors, top.GetInt("max_errors", -1));
  if (out.max_errors < -1) {
    return top.OptionError("max_errors", "expected a count >= 0 (-1: no limit)");
  }
  if (parts.sink || top.Has("max_error_rate")) {
    normalized["max_error_rate"] = out.max_error_rate;
  }
  if (parts.sink || top.Has("max_errors")) normalized["max_errors"] = out.max_errors;
  ARROW_RETURN_NOT_OK(top.Finish());
  // Every local path the job reads: the source's and those of steps' own sources.
  auto add_paths = [&out](const YAML::Node& source) {
    if (!source.IsMap() || !source["paths"].IsSequence()) return;
    for (const auto& p : source["paths"]) out.input_paths.push_back(p.as<std::string>());
  };
  const YAML::Node& read_only = normalized;  // operator[] that does not insert
  if (read_only["source"]) add_paths(read_only["source"]);
  for (const auto& step : steps_norm) {
    for (const auto& entry : step) {
      if (entry.second.IsMap() && entry.second["source"]) add_paths(entry.second["source"]);
    }
  }

  YAML::Emitter emitter;
  emitter << normalized;
  out.normalized_yaml = std::string(emitter.c_str()) + "\n";
  return out;
}

}  // namespace

arrow::Status RegisterStep(const std::string& name, StepFactory factory) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto& r = Registry();
  if (name.empty() || !factory) return arrow::Status::Invalid("RegisterStep: empty name or factory");
  if (!r.emplace(name, std::move(factory)).second) {
    return arrow::Status::AlreadyExists("pipeline step '", name, "' is already registered");
  }
  return arrow::Status::OK();
}

std::vector<std::string> RegisteredSteps() {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  std::vector<std::string> names;
  for (const auto& [n, f] : Registry()) names.push_back(n);
  return names;
}

Pipeline PipelineFile::ToPipeline() const {
  Pipeline p = Pipeline::Read(source);
  for (const auto& step : steps) AddStep(p, step);
  p.Write(write);
  return p;
}

arrow::Result<PipelineFile> ParsePipelineYaml(const std::string& text,
                                              const std::string& name,
                                              const std::string& base_dir,
                                              const PipelineParts& parts) {
  arrow::Result<PipelineFile> parsed;
  try {
    parsed = Parse(text, name, base_dir, parts);
  } catch (const YAML::Exception& e) {
    parsed = arrow::Status::Invalid(WhereMark(name, e.mark), ": ", e.msg);
  } catch (const std::exception& e) {
    parsed = arrow::Status::Invalid(name, ": ", e.what());
  }
  // Messages quote keys and values of the file, which may be any bytes.
  if (!parsed.ok()) {
    return parsed.status().WithMessage(EscapeInvalidUtf8(parsed.status().message()));
  }
  return parsed;
}

arrow::Result<PipelineFile> LoadPipelineFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return arrow::Status::IOError("cannot read pipeline file '", EscapeInvalidUtf8(path), "'");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return ParsePipelineYaml(ss.str(), path, base);
}

}  // namespace dlprep::exec
