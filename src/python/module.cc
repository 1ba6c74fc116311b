// The `dlprep._dlprep` extension: the engine as the Python package sees it. It knows
// pipelines only as pipeline-file text (the same parser and step registry as `dlprep
// run`), Arrow data only through the C Data / C Stream interface (PyCapsules), and
// Python only through nanobind. The public API lives in python/dlprep/; nothing here is
// meant to be called directly by users.
#include <Python.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <arrow/api.h>
#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/ordering.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "core/progress.h"
#include "core/units.h"
#include "dlprep/pipeline.h"
#include "exec/builtin_ops.h"
#include "exec/error_sink.h"
#include "exec/pipeline_file.h"
#include "features/steps.h"
#include "features/windows.h"
#include "infer/http/steps.h"
#include "infer/plugin/score_step.h"
#include "io/glob.h"

namespace nb = nanobind;

namespace dlprep::python {
namespace {

// ---------------------------------------------------------------------------------
// Errors: a Status becomes an instance of the class python/dlprep/errors.py registered
// for its code (set_error_classes), with the same message the CLI prints.

PyObject* g_error_classes = nullptr;  // dict: code name -> class; owned, never freed

const char* CodeName(arrow::StatusCode code) {
  switch (code) {
    case arrow::StatusCode::Invalid:
      return "Invalid";
    case arrow::StatusCode::IOError:
      return "IOError";
    case arrow::StatusCode::TypeError:
      return "TypeError";
    case arrow::StatusCode::KeyError:
      return "KeyError";
    case arrow::StatusCode::IndexError:
      return "IndexError";
    case arrow::StatusCode::NotImplemented:
      return "NotImplemented";
    case arrow::StatusCode::Cancelled:
      return "Cancelled";
    case arrow::StatusCode::OutOfMemory:
      return "OutOfMemory";
    case arrow::StatusCode::AlreadyExists:
      return "AlreadyExists";
    case arrow::StatusCode::CapacityError:
      return "CapacityError";
    default:
      return "Unknown";
  }
}

[[noreturn]] void Raise(const arrow::Status& st) {
  PyObject* cls = nullptr;
  if (g_error_classes != nullptr) {
    cls = PyDict_GetItemString(g_error_classes, CodeName(st.code()));
    if (cls == nullptr) cls = PyDict_GetItemString(g_error_classes, "Unknown");
  }
  if (cls == nullptr) cls = PyExc_RuntimeError;
  const std::string& msg = st.message();
  // Messages may quote input bytes that are not UTF-8: never fail on them.
  PyObject* text = PyUnicode_DecodeUTF8(msg.data(), static_cast<Py_ssize_t>(msg.size()),
                                        "backslashreplace");
  if (text == nullptr) throw nb::python_error();
  PyErr_SetObject(cls, text);
  Py_DECREF(text);
  throw nb::python_error();
}

template <typename T>
T Unwrap(arrow::Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return *std::move(r);
}

void Check(const arrow::Status& st) {
  if (!st.ok()) Raise(st);
}

// ---------------------------------------------------------------------------------
// Arrow PyCapsules (the Arrow PyCapsule interface): names and destructors as the
// protocol specifies, so any consumer (pyarrow, Polars, DuckDB) can take them.

void ReleaseSchemaCapsule(PyObject* capsule) {
  auto* schema =
      static_cast<struct ArrowSchema*>(PyCapsule_GetPointer(capsule, "arrow_schema"));
  if (schema == nullptr) return;
  if (schema->release != nullptr) schema->release(schema);
  std::free(schema);
}

void ReleaseArrayCapsule(PyObject* capsule) {
  auto* array = static_cast<struct ArrowArray*>(PyCapsule_GetPointer(capsule, "arrow_array"));
  if (array == nullptr) return;
  if (array->release != nullptr) array->release(array);
  std::free(array);
}

nb::object SchemaCapsule(const arrow::Schema& schema) {
  auto* c = static_cast<struct ArrowSchema*>(std::malloc(sizeof(struct ArrowSchema)));
  c->release = nullptr;
  arrow::Status st = arrow::ExportSchema(schema, c);
  if (!st.ok()) {
    std::free(c);
    Raise(st);
  }
  return nb::steal(PyCapsule_New(c, "arrow_schema", ReleaseSchemaCapsule));
}

nb::object ArrayCapsule(const arrow::RecordBatch& batch) {
  auto* c = static_cast<struct ArrowArray*>(std::malloc(sizeof(struct ArrowArray)));
  c->release = nullptr;
  arrow::Status st = arrow::ExportRecordBatch(batch, c);
  if (!st.ok()) {
    std::free(c);
    Raise(st);
  }
  return nb::steal(PyCapsule_New(c, "arrow_array", ReleaseArrayCapsule));
}

arrow::Result<std::shared_ptr<arrow::Schema>> ImportSchemaCapsule(PyObject* capsule) {
  auto* c = static_cast<struct ArrowSchema*>(PyCapsule_GetPointer(capsule, "arrow_schema"));
  if (c == nullptr) {
    PyErr_Clear();
    return arrow::Status::TypeError("expected an 'arrow_schema' PyCapsule");
  }
  return arrow::ImportSchema(c);  // moves the struct (release set to null)
}

/// A record batch handed to Python: exports itself on __arrow_c_array__ (zero-copy; the
/// buffers stay alive while any exported array holds them).
struct NativeBatch {
  std::shared_ptr<arrow::RecordBatch> batch;
};

/// A schema handed to Python (__arrow_c_schema__).
struct NativeSchema {
  std::shared_ptr<arrow::Schema> schema;
};

/// Imports an object that has __arrow_c_array__ (a record batch or struct array) into a
/// RecordBatch; TypeError naming `what` otherwise. Caller holds the GIL.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ImportBatchObject(nb::handle obj,
                                                                     const std::string& what) {
  if (!nb::hasattr(obj, "__arrow_c_array__")) {
    return arrow::Status::TypeError(what, " returned ", nb::type_name(obj.type()).c_str(),
                                    ", expected a pyarrow.RecordBatch (or any object with "
                                    "__arrow_c_array__, or a pandas.DataFrame)");
  }
  nb::object pair = obj.attr("__arrow_c_array__")();
  nb::object schema_cap = pair[0];
  nb::object array_cap = pair[1];
  auto* cs = static_cast<struct ArrowSchema*>(
      PyCapsule_GetPointer(schema_cap.ptr(), "arrow_schema"));
  auto* ca =
      static_cast<struct ArrowArray*>(PyCapsule_GetPointer(array_cap.ptr(), "arrow_array"));
  if (cs == nullptr || ca == nullptr) {
    PyErr_Clear();
    return arrow::Status::TypeError(what, ": __arrow_c_array__ did not return "
                                          "('arrow_schema', 'arrow_array') capsules");
  }
  return arrow::ImportRecordBatch(ca, cs);
}

// ---------------------------------------------------------------------------------
// Sources and sinks that are Python objects rather than files.

/// One partition read from an Arrow C stream (from_arrow). A stream can be read once;
/// the Python Dataset asks its object for a fresh stream for every run.
class StreamSource : public Source {
 public:
  explicit StreamSource(std::shared_ptr<arrow::RecordBatchReader> reader)
      : reader_(std::move(reader)), schema_(reader_->schema()) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  int64_t num_partitions() const override { return 1; }
  std::string partition_name(int64_t) const override { return "Arrow stream"; }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t) const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reader_) {
      return arrow::Status::Invalid(
          "this Arrow stream was already read; from_arrow() of a one-shot stream (a "
          "RecordBatchReader) can run once: pass a Table to run it again");
    }
    return std::move(reader_);
  }

 private:
  mutable std::mutex mu_;
  mutable std::shared_ptr<arrow::RecordBatchReader> reader_;  // guarded by mu_
  std::shared_ptr<arrow::Schema> schema_;
};

/// State shared by a streaming run (to_batches) and its consumer.
struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<arrow::RecordBatch>> queue;  // guarded by mu
  std::shared_ptr<arrow::Schema> schema;                  // set when the writer opens
  bool done = false;                                      // the run returned
  arrow::Status status;                                   // its result, when done
  std::string stats_json;
  size_t capacity = 4;
  std::atomic<bool> cancel{false};
};

/// A DatasetWriter that hands batches to the consumer instead of writing files.
class QueueWriter : public DatasetWriter {
 public:
  explicit QueueWriter(std::shared_ptr<StreamState> state) : state_(std::move(state)) {}
  arrow::Status Write(int64_t, const std::shared_ptr<arrow::RecordBatch>& batch) override {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [&] {
      return state_->queue.size() < state_->capacity || state_->cancel.load();
    });
    if (state_->cancel.load()) return arrow::Status::Cancelled("the reader was closed");
    state_->queue.push_back(batch);
    rows_ += batch->num_rows();
    state_->cv.notify_all();
    return arrow::Status::OK();
  }
  arrow::Status FinishPartition(int64_t) override { return arrow::Status::OK(); }
  arrow::Result<WriteResult> Commit(const std::string&) override { return WriteResult{}; }
  void Abort() override {}
  int64_t rows_written() const override { return rows_; }
  int64_t bytes_written() const override { return 0; }
  const std::string& attempt_dir() const override { return empty_; }

 private:
  std::shared_ptr<StreamState> state_;
  int64_t rows_ = 0;
  std::string empty_;
};

// ---------------------------------------------------------------------------------
// Python steps (map_batches): a stateful operator whose per-worker state is a Python
// callable made by a factory (a class constructed once per worker).

/// What one map_batches step was given. Destroyed with the GIL held.
struct PyStepSpec {
  std::string name;
  nb::object factory;  // () -> callable(batch) -> RecordBatch-like
  std::shared_ptr<arrow::Schema> schema;  // declared output schema, or null: probe
  int64_t batch_size = 0;
  std::atomic<int64_t> constructed{0};

  ~PyStepSpec() {
    if (!Py_IsInitialized()) {
      factory.release();  // the interpreter is gone: leak rather than crash
      return;
    }
    nb::gil_scoped_acquire gil;
    factory.reset();
  }
};

constexpr const char* kErrorColumn = "_error";

/// Text of the Python exception being handled, with its traceback.
std::string DescribePythonError(nb::python_error& e) { return e.what(); }

class PyStepOperator : public StatefulOperator {
 public:
  explicit PyStepOperator(std::shared_ptr<PyStepSpec> spec) : spec_(std::move(spec)) {}
  ~PyStepOperator() override {
    if (!Py_IsInitialized()) {
      callable_.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    callable_.reset();
  }

  std::string name() const override { return spec_->name; }

  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    if (spec_->schema) return spec_->schema;
    if (out_schema_) return out_schema_;
    // Probe: call the function on an empty batch of the input schema. For a class the
    // instance made here is the one the first worker uses, so it is made once.
    ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatch::MakeEmpty(
                                          std::make_shared<arrow::Schema>(input)));
    nb::gil_scoped_acquire gil;
    ARROW_RETURN_NOT_OK(EnsureCallable());
    auto probed = CallLocked(empty);
    if (!probed.ok() && !probed.status().IsCancelled()) {
      return probed.status().WithMessage(
          "step '", spec_->name, "' was called on an empty batch to learn its output "
          "schema and failed; declare the schema with map_batches(..., schema=...) to skip "
          "this call. ", probed.status().message());
    }
    ARROW_ASSIGN_OR_RAISE(auto out, std::move(probed));
    ARROW_ASSIGN_OR_RAISE(out_schema_, WithoutErrorColumn(*out->schema()));
    return out_schema_;
  }

  arrow::Status Open(const OperatorContext&) override {
    nb::gil_scoped_acquire gil;
    return EnsureCallable();
  }

  int64_t min_batch_rows() const override { return spec_->batch_size; }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* row_errors) override {
    ARROW_ASSIGN_OR_RAISE(auto expected, OutputSchema(*batch->schema()));
    std::vector<std::shared_ptr<arrow::RecordBatch>> outs;
    int64_t step = spec_->batch_size > 0 ? spec_->batch_size : batch->num_rows();
    if (step == 0) step = 1;
    for (int64_t off = 0; off < batch->num_rows() || off == 0; off += step) {
      auto slice = batch->num_rows() == 0 ? batch : batch->Slice(off, step);
      std::shared_ptr<arrow::RecordBatch> out;
      {
        nb::gil_scoped_acquire gil;
        ARROW_ASSIGN_OR_RAISE(out, CallLocked(slice));
      }
      ARROW_ASSIGN_OR_RAISE(out, SplitErrors(out, slice->num_rows(), off, row_errors));
      if (!out->schema()->Equals(*expected, /*check_metadata=*/false)) {
        return arrow::Status::TypeError(
            "step '", spec_->name, "' returned a batch of schema\n",
            out->schema()->ToString(), "\nbut its output schema is\n", expected->ToString(),
            "\n(declare it with map_batches(..., schema=...) when it depends on the data)");
      }
      outs.push_back(std::move(out));
      if (batch->num_rows() == 0) break;
    }
    if (outs.size() == 1) return outs[0];
    ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(expected, outs));
    ARROW_ASSIGN_OR_RAISE(auto combined, table->CombineChunksToBatch());
    return combined;
  }

  arrow::Status Close() override {
    nb::gil_scoped_acquire gil;
    callable_.reset();
    return arrow::Status::OK();
  }

 private:
  // Caller holds the GIL.
  arrow::Status EnsureCallable() const {
    if (callable_.is_valid()) return arrow::Status::OK();
    try {
      callable_ = spec_->factory();
      spec_->constructed.fetch_add(1);
    } catch (nb::python_error& e) {
      return PythonFailure(e, "could not be constructed");
    }
    return arrow::Status::OK();
  }

  arrow::Status PythonFailure(nb::python_error& e, const char* what) const {
    if (e.matches(PyExc_KeyboardInterrupt)) {
      return arrow::Status::Cancelled("interrupted (KeyboardInterrupt in step '",
                                      spec_->name, "')");
    }
    return arrow::Status::UnknownError("step '", spec_->name, "' ", what, ": ",
                                       DescribePythonError(e));
  }

  // Caller holds the GIL.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> CallLocked(
      const std::shared_ptr<arrow::RecordBatch>& batch) const {
    try {
      nb::object holder = nb::cast(NativeBatch{batch});
      nb::object result = callable_(holder);
      return ImportBatchObject(result, "step '" + spec_->name + "'");
    } catch (nb::python_error& e) {
      return PythonFailure(e, "raised an exception");
    } catch (const std::exception& e) {
      return arrow::Status::UnknownError("step '", spec_->name, "': ", e.what());
    }
  }

  arrow::Result<std::shared_ptr<arrow::Schema>> WithoutErrorColumn(
      const arrow::Schema& schema) const {
    int i = schema.GetFieldIndex(kErrorColumn);
    if (i < 0) return std::make_shared<arrow::Schema>(schema);
    return schema.RemoveField(i);
  }

  // The `_error` column: rows where it is not null failed with that message; they are
  // reported as row errors and left out. It needs one output row per input row.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> SplitErrors(
      const std::shared_ptr<arrow::RecordBatch>& out, int64_t in_rows, int64_t offset,
      RowErrors* row_errors) const {
    int i = out->schema()->GetFieldIndex(kErrorColumn);
    if (i < 0) return out;
    auto col = out->column(i);
    if (col->type_id() != arrow::Type::STRING && col->type_id() != arrow::Type::LARGE_STRING) {
      return arrow::Status::TypeError("step '", spec_->name, "': column '", kErrorColumn,
                                      "' must be a string column (null: the row is fine)");
    }
    if (out->num_rows() != in_rows) {
      return arrow::Status::Invalid(
          "step '", spec_->name, "': a batch with an '", kErrorColumn, "' column must have "
          "one row per input row (got ", out->num_rows(), " rows for ", in_rows, ")");
    }
    ARROW_ASSIGN_OR_RAISE(auto rest, out->RemoveColumn(i));
    if (col->null_count() == col->length()) return rest;
    arrow::BooleanBuilder keep;
    ARROW_RETURN_NOT_OK(keep.Reserve(col->length()));
    for (int64_t r = 0; r < col->length(); ++r) {
      bool failed = col->IsValid(r);
      keep.UnsafeAppend(!failed);
      if (failed) {
        std::string msg = col->type_id() == arrow::Type::STRING
                              ? std::string(static_cast<const arrow::StringArray&>(*col)
                                                .GetView(r))
                              : std::string(static_cast<const arrow::LargeStringArray&>(*col)
                                                .GetView(r));
        row_errors->Add(offset + r, std::move(msg));
      }
    }
    std::shared_ptr<arrow::Array> mask;
    ARROW_RETURN_NOT_OK(keep.Finish(&mask));
    return FilterBatch(rest, mask);
  }

  static arrow::Result<std::shared_ptr<arrow::RecordBatch>> FilterBatch(
      const std::shared_ptr<arrow::RecordBatch>& batch,
      const std::shared_ptr<arrow::Array>& mask);

  std::shared_ptr<PyStepSpec> spec_;
  mutable nb::object callable_;                          // GIL-guarded
  mutable std::shared_ptr<arrow::Schema> out_schema_;    // probed once
};

// The steps of the Plan being constructed (the GIL serializes constructions).
std::vector<std::shared_ptr<PyStepSpec>>* g_building_steps = nullptr;

arrow::Status RegisterPythonStep() {
  return exec::RegisterStep(
      "map_batches", [](exec::ConfigNode* o) -> arrow::Result<PipelineStep> {
        ARROW_ASSIGN_OR_RAISE(int64_t index, o->GetInt("index"));
        ARROW_ASSIGN_OR_RAISE(std::string fn, o->GetString("fn", ""));
        if (g_building_steps == nullptr || index < 0 ||
            index >= static_cast<int64_t>(g_building_steps->size())) {
          return o->OptionError("index",
                                "map_batches steps run only from Python (Dataset.map_batches)");
        }
        std::shared_ptr<PyStepSpec> spec = (*g_building_steps)[index];
        PipelineStep step;
        step.kind = PipelineStep::Kind::kStateful;
        step.stateful = [spec]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
          return std::make_unique<PyStepOperator>(spec);
        };
        return step;
      });
}

void RegisterAllSteps() {
  for (arrow::Status st : {features::RegisterFeatureSteps(), http::RegisterHttpSteps(),
                           infer::RegisterScoreStep(), RegisterPythonStep()}) {
    if (!st.ok() && !st.IsAlreadyExists()) Raise(st);
  }
}

// ---------------------------------------------------------------------------------
// Running with the GIL released, while Ctrl-C still works.

/// Runs `fn` on a thread of its own while this (Python) thread waits with the GIL
/// released, checking for signals every 50 ms. On KeyboardInterrupt it sets `*cancel`,
/// waits for `fn` to return (the run stops and writes nothing), and re-raises.
template <typename F>
auto RunReleased(F&& fn, std::atomic<bool>* cancel,
                 const std::function<void()>& tick = nullptr) -> decltype(fn()) {
  using R = decltype(fn());
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::unique_ptr<R> result;
  std::thread worker([&] {
    R r = fn();
    std::lock_guard<std::mutex> lock(mu);
    result = std::make_unique<R>(std::move(r));
    done = true;
    cv.notify_all();
  });
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  {
    nb::gil_scoped_release release;
    std::unique_lock<std::mutex> lock(mu);
    while (!done) {
      cv.wait_for(lock, std::chrono::milliseconds(50));
      if (done || type != nullptr) continue;
      lock.unlock();
      {
        nb::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) {
          PyErr_Fetch(&type, &value, &tb);
          cancel->store(true);
        } else if (tick) {
          tick();
        }
      }
      lock.lock();
    }
  }
  worker.join();
  if (type != nullptr) {
    PyErr_Restore(type, value, tb);
    throw nb::python_error();
  }
  return std::move(*result);
}

// ---------------------------------------------------------------------------------
// Plan: a parsed pipeline (source, steps, optional sink) ready to run.

struct RunConfig {
  RunOptions options;
  bool max_error_rate_given = false;
  bool max_errors_given = false;
  std::string errors_path;
  bool progress = false;
};

RunConfig MakeRunConfig(nb::dict opts) {
  RunConfig c;
  auto get_int = [&](const char* k, int64_t def) -> int64_t {
    return opts.contains(k) && !opts[k].is_none() ? nb::cast<int64_t>(opts[k]) : def;
  };
  auto get_str = [&](const char* k) -> std::string {
    return opts.contains(k) && !opts[k].is_none() ? nb::cast<std::string>(opts[k])
                                                  : std::string();
  };
  int64_t workers = get_int("workers", 0);
  if (workers < 0) Raise(arrow::Status::Invalid("option workers: expected an integer >= 0"));
  c.options.workers = static_cast<int>(workers);
  c.options.unordered = get_int("unordered", 0) != 0;
  c.options.fail_on_row_error = get_int("fail_on_error", 0) != 0;
  if (opts.contains("max_error_rate") && !opts["max_error_rate"].is_none()) {
    c.options.max_error_rate = nb::cast<double>(opts["max_error_rate"]);
    if (!(c.options.max_error_rate >= 0 && c.options.max_error_rate <= 1)) {
      Raise(arrow::Status::Invalid("option max_error_rate: expected a fraction from 0 to 1"));
    }
    c.max_error_rate_given = true;
  }
  if (opts.contains("max_errors") && !opts["max_errors"].is_none()) {
    c.options.max_errors = nb::cast<int64_t>(opts["max_errors"]);
    if (c.options.max_errors < 0) {
      Raise(arrow::Status::Invalid("option max_errors: expected an integer >= 0"));
    }
    c.max_errors_given = true;
  }
  if (c.options.fail_on_row_error) c.options.max_error_rate = 0;
  std::string mem = get_str("memory_limit");
  if (!mem.empty()) {
    c.options.memory_limit = Unwrap(ParseByteSize(mem, "memory_limit"));
  }
  std::string group = get_str("max_group_bytes");
  if (!group.empty()) c.options.max_group_bytes = Unwrap(ParseByteSize(group, "max_group_bytes"));
  c.options.spill_dir = get_str("spill_dir");
  int64_t threads = get_int("threads_per_worker", 1);
  if (threads < 1) {
    Raise(arrow::Status::Invalid("option threads_per_worker: expected an integer >= 1"));
  }
  c.options.threads_per_worker = static_cast<int>(threads);
  c.errors_path = get_str("errors");
  c.progress = get_int("progress", 0) != 0;
  return c;
}

class Plan {
 public:
  Plan(const std::string& spec, const std::string& name, const std::string& base_dir,
       nb::object stream_capsule, nb::list py_steps) {
    RegisterAllSteps();
    for (nb::handle h : py_steps) {
      auto s = std::make_shared<PyStepSpec>();
      nb::tuple t = nb::cast<nb::tuple>(h);
      s->name = nb::cast<std::string>(t[0]);
      s->factory = nb::borrow(t[1]);
      if (!t[2].is_none()) {
        nb::object cap = t[2].attr("__arrow_c_schema__")();
        s->schema = Unwrap(ImportSchemaCapsule(cap.ptr()));
      }
      s->batch_size = nb::cast<int64_t>(t[3]);
      py_specs_.push_back(std::move(s));
    }
    exec::PipelineParts parts;
    parts.source = stream_capsule.is_none();
    parts.sink = false;
    g_building_steps = &py_specs_;
    auto parsed = exec::ParsePipelineYaml(spec, name, base_dir, parts);
    g_building_steps = nullptr;
    file_ = Unwrap(std::move(parsed));
    if (!stream_capsule.is_none()) {
      auto* c = static_cast<struct ArrowArrayStream*>(
          PyCapsule_GetPointer(stream_capsule.ptr(), "arrow_array_stream"));
      if (c == nullptr) throw nb::python_error();
      file_.source = std::make_shared<StreamSource>(Unwrap(arrow::ImportRecordBatchReader(c)));
    }
    if (!file_.source) Raise(arrow::Status::Invalid(name, ": the pipeline has no source"));
  }

  NativeSchema Schema() const {
    Pipeline p = Chain();
    arrow::Result<std::shared_ptr<arrow::Schema>> r;
    {
      nb::gil_scoped_release release;  // a Python step's probe takes the GIL itself
      r = p.OutputSchema();
    }
    return NativeSchema{Unwrap(std::move(r))};
  }

  NativeSchema SourceSchema() const { return NativeSchema{file_.source->schema()}; }
  int64_t NumPartitions() const { return file_.source->num_partitions(); }
  std::string NormalizedYaml() const { return file_.normalized_yaml; }

  /// Runs to the sink described by `sink` (pipeline-file sink text); returns the
  /// run statistics as JSON.
  std::string Write(const std::string& sink_spec, const std::string& name,
                    const std::string& base_dir, nb::dict opts) {
    WriteOptions write = file_.write;
    if (!sink_spec.empty()) {
      exec::PipelineParts parts;
      parts.source = false;
      write = Unwrap(exec::ParsePipelineYaml(sink_spec, name, base_dir, parts)).write;
    }
    if (write.output_dir.empty()) {
      Raise(arrow::Status::Invalid(name, ": the pipeline has no sink (add 'sink: {format: "
                                         "tfrecord, path: out/}')"));
    }
    // A job never reads its own output, nor replaces the folder it reads.
    arrow::Status outside = io::CheckOutputOutsideInputs(file_.input_paths, write.output_dir);
    if (!outside.ok()) Raise(outside);
    RunConfig config = MakeRunConfig(opts);
    // A pipeline file's own limits, unless given as keywords.
    if (!config.max_error_rate_given && !config.options.fail_on_row_error) {
      config.options.max_error_rate = file_.max_error_rate;
    }
    if (!config.max_errors_given) config.options.max_errors = file_.max_errors;
    Pipeline p = Chain();
    p.Write(write);
    std::unique_ptr<exec::JsonLinesErrorSink> errors;
    if (!config.errors_path.empty()) {
      errors = std::make_unique<exec::JsonLinesErrorSink>(config.errors_path);
      config.options.error_sink = errors.get();
    }
    std::atomic<bool> cancel{false};
    config.options.cancel = &cancel;
    Progress progress("dlprep", file_.source->num_partitions(),
                      config.progress && isatty(2));
    config.options.progress = &progress;
    // A Python progress callback (tqdm in Jupyter), called with the GIL from this
    // thread while the run goes on: (rows, bytes, partitions done, partitions).
    std::function<void()> tick;
    nb::object on_progress;
    if (opts.contains("on_progress") && !opts["on_progress"].is_none()) {
      on_progress = opts["on_progress"];
      tick = [&] {
        try {
          on_progress(progress.rows(), progress.bytes(), progress.parts(),
                      progress.total_parts());
        } catch (nb::python_error& e) {
          e.discard_as_unraisable("dlprep progress callback");
        }
      };
    }
    auto run = RunReleased([&] { return p.Run(config.options); }, &cancel, tick);
    if (tick) tick();
    progress.Finish();
    if (!run.ok()) {
      Raise(run.status().WithMessage(run.status().message(), "; nothing was written to '",
                                     write.output_dir, "'"));
    }
    if (errors) Unwrap(errors->Commit());
    return StatsJson(*run);
  }

  std::string StatsJson(const RunStats& run) const {
    std::string json = run.ToJson();
    // The constructions of each Python step, so that "once per worker" is visible.
    if (!py_specs_.empty() && !json.empty() && json.back() == '}') {
      json.pop_back();
      json += ", \"python_steps\": [";
      for (size_t i = 0; i < py_specs_.size(); ++i) {
        if (i) json += ", ";
        json += "{\"constructed\": " + std::to_string(py_specs_[i]->constructed.load()) + "}";
      }
      json += "]}";
    }
    return json;
  }

  Pipeline Chain() const {
    Pipeline p = Pipeline::Read(file_.source);
    for (const auto& step : file_.steps) exec::AddStep(p, step);
    return p;
  }

  const std::vector<std::shared_ptr<PyStepSpec>>& py_specs() const { return py_specs_; }

 private:
  exec::PipelineFile file_;
  std::vector<std::shared_ptr<PyStepSpec>> py_specs_;
};

/// A running pipeline whose output is read batch by batch (Dataset.to_batches).
class Stream {
 public:
  Stream(const Plan& plan, nb::dict opts) : state_(std::make_shared<StreamState>()) {
    RunConfig config = MakeRunConfig(opts);
    Pipeline p = plan.Chain();
    auto state = state_;
    p.Write([state](const std::shared_ptr<arrow::Schema>& schema)
                -> arrow::Result<std::unique_ptr<DatasetWriter>> {
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->schema = schema;
        state->cv.notify_all();
      }
      return std::make_unique<QueueWriter>(state);
    });
    config.options.cancel = &state_->cancel;
    // Row errors are counted in the statistics; an --errors file and the failed-row
    // limits are for writes (what they commit). A run whose every row failed still fails.
    config.options.max_error_rate = 1;
    config.options.max_errors = -1;
    thread_ = std::thread([state, p, options = config.options, &plan]() {
      auto run = p.Run(options);
      std::lock_guard<std::mutex> lock(state->mu);
      state->done = true;
      state->status = run.status();
      if (run.ok()) state->stats_json = plan.StatsJson(*run);
      state->cv.notify_all();
    });
  }

  ~Stream() { Close(); }

  /// The output schema (waits until the run has planned, or failed).
  NativeSchema Schema() {
    WaitFor([&] { return state_->schema != nullptr || state_->done; });
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->schema) Raise(state_->status.ok() ? arrow::Status::UnknownError("no schema")
                                                   : state_->status);
    return NativeSchema{state_->schema};
  }

  /// The next batch, or None at the end; raises the run's error.
  nb::object Next() {
    WaitFor([&] { return !state_->queue.empty() || state_->done; });
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->queue.empty()) {
      auto b = std::move(state_->queue.front());
      state_->queue.pop_front();
      state_->cv.notify_all();
      return nb::cast(NativeBatch{std::move(b)});
    }
    if (!state_->status.ok()) Raise(state_->status);
    return nb::none();
  }

  std::string StatsJson() {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->stats_json;
  }

  /// Stops the run (if still going) and waits for it. Idempotent.
  void Close() {
    if (!thread_.joinable()) return;
    state_->cancel.store(true);
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->queue.clear();
      state_->cv.notify_all();
    }
    if (PyGILState_Check()) {
      nb::gil_scoped_release release;
      thread_.join();
    } else {
      thread_.join();
    }
  }

 private:
  // Waits with the GIL released; raises KeyboardInterrupt (after stopping the run).
  template <typename Pred>
  void WaitFor(Pred pred) {
    bool interrupted = false;
    {
      nb::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(state_->mu);
      while (!pred()) {
        state_->cv.wait_for(lock, std::chrono::milliseconds(50));
        if (pred()) break;
        lock.unlock();
        {
          nb::gil_scoped_acquire gil;
          if (PyErr_CheckSignals() != 0) interrupted = true;
        }
        lock.lock();
        if (interrupted) break;
      }
    }
    if (interrupted) {
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      Close();
      PyErr_Restore(type, value, tb);
      throw nb::python_error();
    }
  }

  std::shared_ptr<StreamState> state_;
  std::thread thread_;
};

/// One step used without the executor (dlprep.ops): called batch by batch, as a Spark
/// Python worker calls it. A stateful step is opened on the first batch and stays open
/// until close(), so one object loads its model once.
class Operator {
 public:
  Operator(const std::string& spec, const std::string& base_dir, int threads) {
    RegisterAllSteps();
    exec::PipelineParts parts;
    parts.source = false;
    parts.sink = false;
    auto file = Unwrap(exec::ParsePipelineYaml(spec, "operator", base_dir, parts));
    if (file.steps.size() != 1) {
      Raise(arrow::Status::Invalid("an operator is exactly one step, got ", file.steps.size()));
    }
    step_ = file.steps[0];
    context_.threads_per_worker = threads;
  }
  ~Operator() { CloseQuietly(); }

  std::string Kind() const {
    switch (step_.kind) {
      case PipelineStep::Kind::kScalar:
        return "scalar";
      case PipelineStep::Kind::kBatch:
        return "batch";
      case PipelineStep::Kind::kStateful:
        return "stateful";
      case PipelineStep::Kind::kGrouped:
        return "grouped";
    }
    return "batch";
  }

  std::string Name() {
    switch (step_.kind) {
      case PipelineStep::Kind::kScalar:
        return step_.scalar->name();
      case PipelineStep::Kind::kBatch:
        return step_.batch->name();
      case PipelineStep::Kind::kStateful:
        return Unwrap(Instance())->name();
      case PipelineStep::Kind::kGrouped:
        return step_.grouped->name();
    }
    return "";
  }

  /// Output schema for input of `input` (for a grouped step: after its map-side step).
  NativeSchema OutputSchema(nb::handle input) {
    nb::object cap = input.attr("__arrow_c_schema__")();
    auto schema = Unwrap(ImportSchemaCapsule(cap.ptr()));
    switch (step_.kind) {
      case PipelineStep::Kind::kScalar: {
        auto field = Unwrap(step_.scalar->OutputField(*schema));
        return NativeSchema{Unwrap(schema->AddField(schema->num_fields(), field))};
      }
      case PipelineStep::Kind::kBatch:
        return NativeSchema{Unwrap(step_.batch->OutputSchema(*schema))};
      case PipelineStep::Kind::kStateful: {
        StatefulOperator* op = Unwrap(Instance());
        return NativeSchema{Unwrap(op->OutputSchema(*schema))};
      }
      case PipelineStep::Kind::kGrouped: {
        if (auto pre = step_.grouped->PreGroup()) schema = Unwrap(pre->OutputSchema(*schema));
        return NativeSchema{Unwrap(step_.grouped->OutputSchema(*schema))};
      }
    }
    return NativeSchema{schema};
  }

  /// Processes one batch (scalar, batch, stateful). Returns the output batches (none
  /// when a stateful step holds rows back).
  nb::list Process(nb::handle obj) {
    auto batch = Unwrap(ImportBatchObject(obj, "process()"));
    std::shared_ptr<arrow::RecordBatch> out;
    arrow::Status st;
    {
      nb::gil_scoped_release release;
      st = ProcessReleased(batch, &out);
    }
    Check(st);
    nb::list result;
    if (out != nullptr) result.append(nb::cast(NativeBatch{out}));
    return result;
  }

  /// The map-side step of a grouped operator (projection, category codes) on one batch;
  /// the batch unchanged when it has none.
  NativeBatch PreGroup(nb::handle obj) {
    auto batch = Unwrap(ImportBatchObject(obj, "pre_group()"));
    if (step_.kind != PipelineStep::Kind::kGrouped) {
      Raise(arrow::Status::Invalid("pre_group() is for grouped steps"));
    }
    auto pre = step_.grouped->PreGroup();
    if (!pre) return NativeBatch{batch};
    arrow::Result<std::shared_ptr<arrow::RecordBatch>> r;
    {
      nb::gil_scoped_release release;
      r = pre->Process(batch);
    }
    return NativeBatch{Unwrap(std::move(r))};
  }

  /// Applies a grouped step to one whole group (an Arrow stream of its rows, already
  /// through pre_group(), in any order: they are sorted here by the step's sort column).
  nb::list ApplyGroup(nb::handle stream_obj) {
    if (step_.kind != PipelineStep::Kind::kGrouped) {
      Raise(arrow::Status::Invalid("apply_group() is for grouped steps"));
    }
    nb::object cap = stream_obj.attr("__arrow_c_stream__")();
    auto* c = static_cast<struct ArrowArrayStream*>(
        PyCapsule_GetPointer(cap.ptr(), "arrow_array_stream"));
    if (c == nullptr) throw nb::python_error();
    auto reader = Unwrap(arrow::ImportRecordBatchReader(c));
    std::shared_ptr<arrow::Table> out;
    arrow::Status st;
    {
      nb::gil_scoped_release release;
      st = ApplyReleased(reader, &out);
    }
    Check(st);
    nb::list result;
    for (const auto& b : Unwrap(arrow::TableBatchReader(*out).ToRecordBatches())) {
      result.append(nb::cast(NativeBatch{b}));
    }
    return result;
  }

  nb::list Flush() {
    nb::list result;
    if (step_.kind != PipelineStep::Kind::kStateful || !opened_) return result;
    arrow::Result<std::shared_ptr<arrow::RecordBatch>> r;
    {
      nb::gil_scoped_release release;
      r = instance_->Flush();
    }
    std::shared_ptr<arrow::RecordBatch> out = Unwrap(std::move(r));
    if (out != nullptr) result.append(nb::cast(NativeBatch{out}));
    return result;
  }

  /// (row, message) of the rows that failed since the last call; rows count every row
  /// given to process() since the operator was made.
  nb::list TakeRowErrors() {
    nb::list out;
    for (auto& [row, msg] : errors_) out.append(nb::make_tuple(row, msg));
    errors_.clear();
    return out;
  }

  int64_t Opens() const { return opens_; }

  /// A stateful step's wish for batches of at least this many rows (0: any size); the
  /// executor gathers them, a caller of process() may.
  int64_t MinBatchRows() {
    if (step_.kind != PipelineStep::Kind::kStateful) return 0;
    return std::max<int64_t>(0, Unwrap(Instance())->min_batch_rows());
  }

  void Close() {
    if (!opened_) return;
    opened_ = false;
    arrow::Status st;
    {
      nb::gil_scoped_release release;
      st = instance_->Close();
    }
    instance_.reset();
    Check(st);
  }

 private:
  arrow::Result<StatefulOperator*> Instance() {
    if (!instance_) {
      ARROW_ASSIGN_OR_RAISE(instance_, step_.stateful());
    }
    return instance_.get();
  }

  void CloseQuietly() {
    if (opened_ && instance_) {
      opened_ = false;
      (void)instance_->Close();
    }
  }

  arrow::Status ProcessReleased(const std::shared_ptr<arrow::RecordBatch>& batch,
                                std::shared_ptr<arrow::RecordBatch>* out) {
    switch (step_.kind) {
      case PipelineStep::Kind::kScalar: {
        ARROW_ASSIGN_OR_RAISE(auto field, step_.scalar->OutputField(*batch->schema()));
        ARROW_ASSIGN_OR_RAISE(auto col, step_.scalar->Compute(*batch));
        ARROW_ASSIGN_OR_RAISE(*out, batch->AddColumn(batch->num_columns(), field, col));
        break;
      }
      case PipelineStep::Kind::kBatch: {
        ARROW_ASSIGN_OR_RAISE(*out, step_.batch->Process(batch));
        break;
      }
      case PipelineStep::Kind::kStateful: {
        ARROW_ASSIGN_OR_RAISE(StatefulOperator* op, Instance());
        if (!opened_) {
          ARROW_RETURN_NOT_OK(op->Open(context_));
          opened_ = true;
          ++opens_;
        }
        RowErrors errors;
        ARROW_ASSIGN_OR_RAISE(*out, op->Process(batch, &errors));
        for (int64_t i = 0; i < errors.size(); ++i) {
          errors_.emplace_back(rows_seen_ + errors.rows[i], std::move(errors.messages[i]));
        }
        break;
      }
      case PipelineStep::Kind::kGrouped:
        return arrow::Status::Invalid("a grouped step takes whole groups: use apply_group()");
    }
    rows_seen_ += batch->num_rows();
    return arrow::Status::OK();
  }

  arrow::Status ApplyReleased(const std::shared_ptr<arrow::RecordBatchReader>& reader,
                              std::shared_ptr<arrow::Table>* out) {
    ARROW_ASSIGN_OR_RAISE(auto table, reader->ToTable());
    if (table->num_rows() == 0) {
      ARROW_ASSIGN_OR_RAISE(auto schema, step_.grouped->OutputSchema(*table->schema()));
      ARROW_ASSIGN_OR_RAISE(*out, arrow::Table::MakeEmpty(schema));
      return arrow::Status::OK();
    }
    std::string sort = step_.group_sort_by.empty() ? step_.grouped->sort_column()
                                                   : step_.group_sort_by;
    if (!sort.empty()) {
      arrow::compute::SortOptions options({arrow::compute::SortKey(sort)});
      ARROW_ASSIGN_OR_RAISE(auto indices,
                            arrow::compute::SortIndices(arrow::Datum(table), options));
      ARROW_ASSIGN_OR_RAISE(arrow::Datum sorted,
                            arrow::compute::Take(arrow::Datum(table), arrow::Datum(indices)));
      table = sorted.table();
    }
    ARROW_ASSIGN_OR_RAISE(table, table->CombineChunks());
    ARROW_ASSIGN_OR_RAISE(*out, step_.grouped->Apply(*table));
    return arrow::Status::OK();
  }

  PipelineStep step_;
  OperatorContext context_;
  std::unique_ptr<StatefulOperator> instance_;
  bool opened_ = false;
  int64_t opens_ = 0;
  int64_t rows_seen_ = 0;
  std::vector<std::pair<int64_t, std::string>> errors_;
};

arrow::Result<std::shared_ptr<arrow::RecordBatch>> PyStepOperator::FilterBatch(
    const std::shared_ptr<arrow::RecordBatch>& batch,
    const std::shared_ptr<arrow::Array>& mask) {
  ARROW_ASSIGN_OR_RAISE(arrow::Datum out,
                        arrow::compute::Filter(arrow::Datum(batch), arrow::Datum(mask)));
  return out.record_batch();
}

}  // namespace
}  // namespace dlprep::python

NB_MODULE(_dlprep, m) {
  using namespace dlprep::python;
  m.doc() = "dlprep's native engine (internal; use the dlprep package)";

  m.def("set_error_classes", [](nb::dict classes) {
    Py_XDECREF(g_error_classes);
    g_error_classes = classes.ptr();
    Py_INCREF(g_error_classes);
  });
  m.def("arrow_version", []() { return std::string(arrow::GetBuildInfo().version_string); });
  m.def("registered_steps", []() {
    RegisterAllSteps();
    nb::list out;
    for (const auto& s : dlprep::exec::RegisteredSteps()) out.append(s);
    return out;
  });
  m.def("parse_byte_size", [](const std::string& text, const std::string& option) {
    return Unwrap(dlprep::ParseByteSize(text, option));
  });
  m.def("parse_duration", [](const std::string& text, const std::string& option) {
    return Unwrap(dlprep::ParseDuration(text, option));
  });
  m.def("parse_whole_seconds", [](const std::string& text, const std::string& option) {
    return Unwrap(dlprep::ParseWholeSeconds(text, option));
  });
  m.def(
      "read_files",
      [](nb::list paths, int64_t begin, int64_t max_bytes) {
        std::vector<std::optional<std::string>> local;
        local.reserve(paths.size());
        for (nb::handle p : paths) {
          if (p.is_none()) {
            local.emplace_back(std::nullopt);
          } else {
            local.emplace_back(nb::cast<std::string>(p));
          }
        }
        arrow::Result<dlprep::FileContents> r;
        {
          nb::gil_scoped_release release;
          r = dlprep::ReadFileContents(local, begin, max_bytes);
        }
        dlprep::FileContents c = Unwrap(std::move(r));
        nb::list errors;
        for (auto& [row, why] : c.errors) errors.append(nb::make_tuple(row, why));
        const int64_t n = c.content->length();
        auto batch = arrow::RecordBatch::Make(
            arrow::schema({arrow::field("content", arrow::binary())}), n, {c.content});
        return nb::make_tuple(nb::cast(NativeBatch{batch}), c.end, errors);
      },
      nb::arg("paths"), nb::arg("begin"), nb::arg("max_bytes"),
      "Reads whole local files, paths[begin:] (str, or None for no file), until the "
      "content would pass max_bytes (at least one file). Returns (a batch of one binary "
      "column 'content', null where nothing was read; the index after the last path "
      "read; [(index, reason)] for the files that could not be read).");
  m.def("torch_backend", []() {
    auto api = dlprep::infer::LoadTorchBackend();
    if (!api.ok()) Raise(api.status());
    return (*api)->description();
  });

  nb::class_<NativeBatch>(m, "NativeBatch")
      .def("__arrow_c_array__",
           [](const NativeBatch& b, nb::object requested_schema) {
             return nb::make_tuple(SchemaCapsule(*b.batch->schema()), ArrayCapsule(*b.batch));
           },
           nb::arg("requested_schema") = nb::none())
      .def_prop_ro("num_rows", [](const NativeBatch& b) { return b.batch->num_rows(); });

  nb::class_<NativeSchema>(m, "NativeSchema")
      .def("__arrow_c_schema__", [](const NativeSchema& s) { return SchemaCapsule(*s.schema); });

  nb::class_<Plan>(m, "Plan")
      .def(nb::init<const std::string&, const std::string&, const std::string&, nb::object,
                    nb::list>(),
           nb::arg("spec"), nb::arg("name"), nb::arg("base_dir"), nb::arg("stream").none(),
           nb::arg("python_steps"))
      .def("schema", &Plan::Schema)
      .def("source_schema", &Plan::SourceSchema)
      .def_prop_ro("num_partitions", &Plan::NumPartitions)
      .def_prop_ro("normalized_yaml", &Plan::NormalizedYaml)
      .def("write", &Plan::Write, nb::arg("sink"), nb::arg("name"), nb::arg("base_dir"),
           nb::arg("options"));

  nb::class_<Operator>(m, "Operator")
      .def(nb::init<const std::string&, const std::string&, int>(), nb::arg("spec"),
           nb::arg("base_dir"), nb::arg("threads") = 1)
      .def_prop_ro("kind", &Operator::Kind)
      .def_prop_ro("name", &Operator::Name)
      .def_prop_ro("opens", &Operator::Opens)
      .def_prop_ro("min_batch_rows", &Operator::MinBatchRows)
      .def("output_schema", &Operator::OutputSchema)
      .def("process", &Operator::Process)
      .def("pre_group", &Operator::PreGroup)
      .def("apply_group", &Operator::ApplyGroup)
      .def("flush", &Operator::Flush)
      .def("take_row_errors", &Operator::TakeRowErrors)
      .def("close", &Operator::Close);

  nb::class_<Stream>(m, "Stream")
      .def(nb::init<const Plan&, nb::dict>(), nb::arg("plan"), nb::arg("options"),
           nb::keep_alive<1, 2>())
      .def("schema", &Stream::Schema)
      .def("next", &Stream::Next)
      .def("stats_json", &Stream::StatsJson)
      .def("close", &Stream::Close);
}
