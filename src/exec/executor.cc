#include "exec/executor.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <arrow/util/byte_size.h>

#include "core/memory.h"
#include "core/progress.h"
#include "exec/grouped.h"

namespace dlprep::exec {

struct Executor::PlannedStep {
  PipelineStep::Kind kind = PipelineStep::Kind::kBatch;
  std::string name;
  std::string kind_name;
  std::shared_ptr<ScalarOperator> scalar;
  std::shared_ptr<arrow::Field> field;  // scalar: the appended column
  std::shared_ptr<BatchOperator> batch;
  StatefulOperatorFactory factory;
  // The instance made while planning; handed to the first worker that needs one.
  // Guarded by RunState::mu_ during a run.
  std::unique_ptr<StatefulOperator> probe;
  int64_t min_batch_rows = 0;  // stateful: StatefulOperator::min_batch_rows()
  std::shared_ptr<arrow::Schema> output_schema;
};

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// "rows 4096-8191" (0-based, inclusive) of a batch of `n` rows starting at `first`.
std::string RowRange(int64_t first, int64_t n) {
  if (n == 0) return "at row " + std::to_string(first) + " (empty batch)";
  return "rows " + std::to_string(first) + "-" + std::to_string(first + n - 1);
}

std::string Where(const Source& source, int64_t partition) {
  return "partition " + std::to_string(partition) + " '" +
         source.partition_name(partition) + "'";
}

// Whether `message` quotes ('...') a path, with a '/', that `partition_name` contains:
// a message that names its row's file needs no partition name beside it.
bool MessageNamesPathOf(const std::string& message, const std::string& partition_name) {
  size_t open = message.find('\'');
  while (open != std::string::npos) {
    const size_t close = message.find('\'', open + 1);
    if (close == std::string::npos) break;
    const std::string quoted = message.substr(open + 1, close - open - 1);
    if (quoted.find('/') != std::string::npos &&
        partition_name.find(quoted) != std::string::npos) {
      return true;
    }
    open = message.find('\'', close + 1);
  }
  return false;
}

// Where(), without the partition's name when `message` already names its file.
std::string WhereFor(const Source& source, int64_t partition, const std::string& message) {
  if (MessageNamesPathOf(message, source.partition_name(partition))) {
    return "partition " + std::to_string(partition);
  }
  return Where(source, partition);
}

constexpr int64_t kMaxRowErrorSamples = 100;
constexpr auto kPollInterval = std::chrono::milliseconds(20);

// One finished batch on its way to the sink, or the end-of-partition marker.
struct Item {
  int64_t partition = 0;
  std::shared_ptr<arrow::RecordBatch> batch;  // null: end of partition
  int64_t bytes = 0;
};

// Batches gathered for a stateful step with min_batch_rows (by step).
struct Gathered {
  arrow::RecordBatchVector batches;
  int64_t rows = 0;
  int64_t first_row = 0;  // source row of the first gathered batch
};

// Per-worker state; touched only by its own thread until merged.
struct Worker {
  int index = 0;
  std::vector<std::unique_ptr<StatefulOperator>> instances;  // by step; null if none
  std::vector<bool> opened;
  std::vector<Gathered> gathered;  // by step
  std::vector<StageStats> stats;  // [0] source, [1 + i] step i
  StageStats sink;                // concurrent sinks only
};

// The state of one Executor::Run().
//
// Locking: mu_ guards the reorder buffer (pending_, arrived_, head_*, buffered_*,
// peak_*), error_, finished stats and the stateful probes. errors_mu_ serialises error
// sink calls and guards the row-error counters. Operators and the sink are always
// called with no lock held, except the error sink (under errors_mu_).
class RunState {
 public:
  RunState(const Source& source, std::vector<Executor::PlannedStep>* steps,
           const RunOptions& options, int workers, int64_t max_batches, BatchSink* sink,
           bool count_reads)
      : source_(source),
        steps_(*steps),
        options_(options),
        workers_(workers),
        max_batches_(max_batches),
        max_bytes_(ReorderBufferBytes(options)),
        sink_(sink),
        num_partitions_(source.num_partitions()),
        count_reads_(count_reads && options.progress != nullptr) {}

  arrow::Result<RunStats> Run() {
    auto start = Clock::now();
    for (size_t i = 0; i < steps_.size() + 1; ++i) merged_.emplace_back();
    int threads = static_cast<int>(std::min<int64_t>(workers_, num_partitions_));
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int w = 0; w < threads; ++w) pool.emplace_back([this, w] { WorkerMain(w); });
    SinkLoop();
    for (auto& t : pool) t.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_.ok()) return error_;
    }
    RunStats stats;
    stats.workers = workers_;
    stats.unordered = options_.unordered;
    stats.partitions = num_partitions_;
    merged_[0].name = "source";
    merged_[0].kind = "source";
    for (size_t i = 0; i < steps_.size(); ++i) {
      merged_[i + 1].name = steps_[i].name;
      merged_[i + 1].kind = steps_[i].kind_name;
    }
    stats.stages = merged_;
    sink_stats_.name = "sink";
    sink_stats_.kind = "sink";
    sink_stats_.batches_in += worker_sink_stats_.batches_in;
    sink_stats_.rows_in += worker_sink_stats_.rows_in;
    sink_stats_.batches_out += worker_sink_stats_.batches_out;
    sink_stats_.rows_out += worker_sink_stats_.rows_out;
    sink_stats_.seconds += worker_sink_stats_.seconds;
    stats.stages.push_back(sink_stats_);
    stats.rows_read = merged_[0].rows_out;
    stats.rows_written = sink_stats_.rows_out;
    stats.batches_written = sink_stats_.batches_out;
    stats.row_errors = row_errors_;
    stats.row_error_samples = row_error_samples_;
    for (size_t i = 0; i < stats.row_error_samples.size(); ++i) {
      if (sample_repeats_[i] > 0) {
        stats.row_error_samples[i] += " (... and " + std::to_string(sample_repeats_[i]) +
                                      " more row" + (sample_repeats_[i] == 1 ? "" : "s") +
                                      " with the same error)";
      }
    }
    stats.max_buffered_batches = max_batches_;
    stats.max_buffered_bytes = max_bytes_;
    stats.peak_buffered_batches = peak_batches_;
    stats.peak_buffered_bytes = peak_bytes_;
    stats.wall_seconds = Since(start);
    return stats;
  }

 private:
  bool CancelRequested() const {
    return options_.cancel != nullptr && options_.cancel->load();
  }

  // Records the first error and stops everyone.
  void Fail(const arrow::Status& st) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.ok()) error_ = st;
      stop_.store(true);
    }
    space_cv_.notify_all();
    items_cv_.notify_all();
  }

  void WorkerMain(int index) {
    Worker w;
    w.index = index;
    w.instances.resize(steps_.size());
    w.opened.assign(steps_.size(), false);
    w.gathered.assign(steps_.size(), Gathered());
    w.stats.resize(steps_.size() + 1);
    while (!stop_.load()) {
      int64_t p = next_partition_.fetch_add(1);
      if (p >= num_partitions_) break;
      arrow::Status st = ProcessPartition(&w, p);
      if (!st.ok()) {
        Fail(st);
        break;
      }
    }
    for (size_t i = 0; i < steps_.size(); ++i) {
      if (!w.opened[i]) continue;
      auto t0 = Clock::now();
      arrow::Status st = w.instances[i]->Close();
      w.stats[i + 1].seconds += Since(t0);
      if (!st.ok() && !stop_.load()) {
        Fail(st.WithMessage("operator '", steps_[i].name, "' failed to close on worker ",
                            w.index, ": ", st.message()));
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < w.stats.size(); ++i) {
      StageStats& m = merged_[i];
      const StageStats& s = w.stats[i];
      m.batches_in += s.batches_in;
      m.rows_in += s.rows_in;
      m.batches_out += s.batches_out;
      m.rows_out += s.rows_out;
      m.seconds += s.seconds;
      m.opens += s.opens;
      m.row_errors += s.row_errors;
    }
    worker_sink_stats_.batches_in += w.sink.batches_in;
    worker_sink_stats_.rows_in += w.sink.rows_in;
    worker_sink_stats_.batches_out += w.sink.batches_out;
    worker_sink_stats_.rows_out += w.sink.rows_out;
    worker_sink_stats_.seconds += w.sink.seconds;
  }

  arrow::Status ProcessPartition(Worker* w, int64_t p) {
    StageStats& src = w->stats[0];
    auto t0 = Clock::now();
    auto reader_r = source_.OpenPartition(p);
    src.seconds += Since(t0);
    if (!reader_r.ok()) {
      return reader_r.status().WithMessage("opening ", Where(source_, p), ": ",
                                           reader_r.status().message());
    }
    auto reader = std::move(*reader_r);
    const std::shared_ptr<arrow::Schema> schema = source_.schema();
    int64_t first_row = 0;
    int64_t seq = 0;
    while (true) {
      if (stop_.load()) return arrow::Status::OK();
      if (CancelRequested()) {
        return arrow::Status::Cancelled("run cancelled while processing ",
                                        Where(source_, p), " at row ", first_row);
      }
      std::shared_ptr<arrow::RecordBatch> batch;
      t0 = Clock::now();
      arrow::Status st = reader->ReadNext(&batch);
      src.seconds += Since(t0);
      if (!st.ok()) {
        return st.WithMessage("reading ", Where(source_, p), " after row ", first_row,
                              ": ", st.message());
      }
      if (batch == nullptr) break;
      if (!batch->schema()->Equals(*schema, /*check_metadata=*/false)) {
        return arrow::Status::TypeError(
            "source returned a batch of schema ", batch->schema()->ToString(), " in ",
            Where(source_, p), ", expected ", schema->ToString());
      }
      int64_t n = batch->num_rows();
      src.batches_in += 1;
      src.rows_in += n;
      src.batches_out += 1;
      src.rows_out += n;
      if (count_reads_) options_.progress->AddRead(n, arrow::util::TotalBufferSize(*batch));
      ARROW_ASSIGN_OR_RAISE(auto out, RunChain(w, p, first_row, std::move(batch)));
      first_row += n;
      ARROW_RETURN_NOT_OK(Emit(w, p, first_row - n, n, &seq, std::move(out)));
    }
    // Rows that stateful steps held back (StatefulOperator::Flush), step by step: what
    // step i releases runs through the steps after it before they flush in turn.
    for (size_t i = 0; i < steps_.size(); ++i) {
      Gathered& g = w->gathered[i];
      if (!g.batches.empty()) {
        // The rest gathered for step i (fewer than its min_batch_rows).
        const int64_t at = g.first_row;
        ARROW_ASSIGN_OR_RAISE(auto rest, TakeGathered(&g));
        ARROW_ASSIGN_OR_RAISE(auto out, RunChain(w, p, at, std::move(rest), i,
                                                 /*gather_first=*/false));
        ARROW_RETURN_NOT_OK(Emit(w, p, at, 0, &seq, std::move(out)));
      }
      if (!w->opened[i]) continue;
      StageStats& stats = w->stats[i + 1];
      t0 = Clock::now();
      auto flushed = w->instances[i]->Flush();
      stats.seconds += Since(t0);
      if (!flushed.ok()) {
        return flushed.status().WithMessage(
            "operator '", steps_[i].name, "' failed flushing the rows it held of ",
            Where(source_, p), ": ", flushed.status().message());
      }
      std::shared_ptr<arrow::RecordBatch> held = *std::move(flushed);
      if (held == nullptr || held->num_rows() == 0) continue;
      std::shared_ptr<arrow::RecordBatch> out;
      ARROW_RETURN_NOT_OK(CheckOutput(steps_[i], std::move(held), &out));
      stats.rows_out += out->num_rows();
      stats.batches_out += 1;
      ARROW_ASSIGN_OR_RAISE(out, RunChain(w, p, first_row, std::move(out), i + 1));
      ARROW_RETURN_NOT_OK(Emit(w, p, first_row, 0, &seq, std::move(out)));
    }
    Item end;
    end.partition = p;
    Deliver(p, seq, std::move(end));
    return arrow::Status::OK();
  }

  // Hands a chain's output for source rows [first_row, first_row + n) of partition `p`
  // to the sink (directly when it is concurrent, else through the reorder buffer as
  // batch `*seq`). Null or empty output is dropped.
  arrow::Status Emit(Worker* w, int64_t p, int64_t first_row, int64_t n, int64_t* seq,
                     std::shared_ptr<arrow::RecordBatch> out) {
    if (out == nullptr || out->num_rows() == 0) return arrow::Status::OK();
    if (sink_->concurrent()) {
      const int64_t rows = out->num_rows();
      w->sink.batches_in += 1;
      w->sink.rows_in += rows;
      auto t0 = Clock::now();
      arrow::Status st = sink_->Write(p, out);
      w->sink.seconds += Since(t0);
      if (!st.ok()) {
        return st.WithMessage("sink failed writing ", Where(source_, p), ", ",
                              RowRange(first_row, n), ": ", st.message());
      }
      w->sink.batches_out += 1;
      w->sink.rows_out += rows;
      return arrow::Status::OK();
    }
    Item item;
    item.partition = p;
    item.bytes = arrow::util::TotalBufferSize(*out);
    item.batch = std::move(out);
    Deliver(p, (*seq)++, std::move(item));
    return arrow::Status::OK();
  }

  // The batches of `g` as one batch (concatenated when more than one); empties `g`.
  static arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeGathered(Gathered* g) {
    arrow::RecordBatchVector batches = std::move(g->batches);
    *g = Gathered();
    if (batches.size() == 1) return batches[0];
    return arrow::ConcatenateRecordBatches(batches, EnginePool());
  }

  // Runs `batch` (source rows [first_row, first_row + n) of partition `p`) through the
  // steps from `first_step` on. Returns null when a step stopped the batch (0 rows).
  //
  // A stateful step with min_batch_rows gathers batches (in w->gathered) until it has
  // that many rows, and the chain stops there (null) meanwhile; gather_first = false
  // runs step `first_step` on `batch` as it is (the rest of a partition).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> RunChain(
      Worker* w, int64_t p, int64_t first_row, std::shared_ptr<arrow::RecordBatch> batch,
      size_t first_step = 0, bool gather_first = true) {
    int64_t source_rows = batch->num_rows();
    auto annotate = [&](const Executor::PlannedStep& step, const arrow::Status& st) {
      if (st.IsCancelled() && CancelRequested()) {
        // The operator noticed Ctrl-C first (a stateful operator waiting on the network).
        return st.WithMessage("run cancelled while operator '", step.name, "' processed ",
                              Where(source_, p), ": ", st.message());
      }
      return st.WithMessage("operator '", step.name, "' failed on ",
                            WhereFor(source_, p, st.message()), ", ",
                            RowRange(first_row, source_rows), ": ", st.message());
    };
    for (size_t i = first_step; i < steps_.size(); ++i) {
      Executor::PlannedStep& step = steps_[i];
      StageStats& stats = w->stats[i + 1];
      if (step.min_batch_rows > 0 && (i != first_step || gather_first)) {
        Gathered& g = w->gathered[i];
        if (g.batches.empty()) g.first_row = first_row;
        g.rows += batch->num_rows();
        g.batches.push_back(std::move(batch));
        if (g.rows < step.min_batch_rows) return nullptr;
        // Messages name the source rows of all gathered batches.
        source_rows = first_row + source_rows - g.first_row;
        first_row = g.first_row;
        ARROW_ASSIGN_OR_RAISE(batch, TakeGathered(&g));
      }
      stats.batches_in += 1;
      stats.rows_in += batch->num_rows();
      auto t0 = Clock::now();
      std::shared_ptr<arrow::RecordBatch> out;
      arrow::Status st = RunStep(w, i, p, first_row, batch, &out);
      stats.seconds += Since(t0);
      if (!st.ok()) return annotate(step, st);
      batch = std::move(out);
      stats.batches_out += 1;
      stats.rows_out += batch->num_rows();
      if (batch->num_rows() == 0) return nullptr;
    }
    return batch;
  }

  arrow::Status RunStep(Worker* w, size_t i, int64_t p, int64_t first_row,
                        const std::shared_ptr<arrow::RecordBatch>& batch,
                        std::shared_ptr<arrow::RecordBatch>* out) {
    Executor::PlannedStep& step = steps_[i];
    switch (step.kind) {
      case PipelineStep::Kind::kScalar: {
        ARROW_ASSIGN_OR_RAISE(auto column, step.scalar->Compute(*batch));
        if (column == nullptr)
          return arrow::Status::Invalid("Compute returned no column");
        if (column->length() != batch->num_rows()) {
          return arrow::Status::Invalid("scalar operator returned ", column->length(),
                                        " values for a batch of ", batch->num_rows(),
                                        " rows; expected one value per row");
        }
        if (!column->type()->Equals(*step.field->type())) {
          return arrow::Status::TypeError(
              "scalar operator returned a column of type ", column->type()->ToString(),
              "; OutputField declared ", step.field->ToString());
        }
        ARROW_ASSIGN_OR_RAISE(*out,
                              batch->AddColumn(batch->num_columns(), step.field, column));
        return arrow::Status::OK();
      }
      case PipelineStep::Kind::kBatch: {
        ARROW_ASSIGN_OR_RAISE(auto result, step.batch->Process(batch));
        return CheckOutput(step, std::move(result), out);
      }
      case PipelineStep::Kind::kStateful: {
        ARROW_ASSIGN_OR_RAISE(StatefulOperator * op, Instance(w, i));
        RowErrors errors;
        ARROW_ASSIGN_OR_RAISE(auto result, op->Process(batch, &errors));
        if (!errors.empty()) {
          ARROW_RETURN_NOT_OK(
              HandleRowErrors(w, i, p, first_row, batch, std::move(errors)));
        }
        return CheckOutput(step, std::move(result), out);
      }
      case PipelineStep::Kind::kGrouped:
        break;  // never in a chain: Executor::Make cuts the chain there
    }
    return arrow::Status::UnknownError("unknown step kind");
  }

  arrow::Status CheckOutput(const Executor::PlannedStep& step,
                            std::shared_ptr<arrow::RecordBatch> result,
                            std::shared_ptr<arrow::RecordBatch>* out) {
    if (result == nullptr) return arrow::Status::Invalid("Process returned no batch");
    if (!result->schema()->Equals(*step.output_schema, /*check_metadata=*/false)) {
      return arrow::Status::TypeError(
          "Process returned schema ", result->schema()->ToString(),
          "; OutputSchema declared ", step.output_schema->ToString());
    }
    // Keep the declared metadata (e.g. dlprep.shape) on every batch.
    if (!result->schema()->Equals(*step.output_schema, /*check_metadata=*/true)) {
      ARROW_ASSIGN_OR_RAISE(result, result->ReplaceSchema(step.output_schema));
    }
    *out = std::move(result);
    return arrow::Status::OK();
  }

  // The worker's instance of stateful step `i`, created and opened on first use.
  arrow::Result<StatefulOperator*> Instance(Worker* w, size_t i) {
    if (w->opened[i]) return w->instances[i].get();
    Executor::PlannedStep& step = steps_[i];
    if (w->instances[i] == nullptr) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        w->instances[i] = std::move(step.probe);
      }
      if (w->instances[i] == nullptr) {
        std::lock_guard<std::mutex> lock(factory_mu_);
        ARROW_ASSIGN_OR_RAISE(w->instances[i], step.factory());
        if (w->instances[i] == nullptr) {
          return arrow::Status::Invalid("the operator factory returned null");
        }
      }
    }
    OperatorContext context;
    context.worker_index = w->index;
    context.num_workers = workers_;
    context.threads_per_worker = std::max(1, options_.threads_per_worker);
    context.stop_requested = [this] { return stop_.load() || CancelRequested(); };
    arrow::Status st = w->instances[i]->Open(context);
    w->stats[i + 1].opens += 1;
    if (!st.ok()) {
      return st.WithMessage("Open() on worker ", w->index, " failed: ", st.message());
    }
    w->opened[i] = true;
    return w->instances[i].get();
  }

  arrow::Status HandleRowErrors(Worker* w, size_t i, int64_t p, int64_t first_row,
                                const std::shared_ptr<arrow::RecordBatch>& input,
                                RowErrors errors) {
    const Executor::PlannedStep& step = steps_[i];
    if (errors.rows.size() != errors.messages.size()) {
      return arrow::Status::Invalid("RowErrors has ", errors.rows.size(), " rows but ",
                                    errors.messages.size(), " messages");
    }
    for (int64_t row : errors.rows) {
      if (row < 0 || row >= input->num_rows()) {
        return arrow::Status::Invalid("RowErrors names row ", row, " of a batch of ",
                                      input->num_rows(), " rows");
      }
    }
    w->stats[i + 1].row_errors += errors.size();
    if (options_.fail_on_row_error) {
      return arrow::Status::Invalid(
          "row ", errors.rows[0], " of the batch failed: ", errors.messages[0], " (",
          errors.size(),
          " row(s) failed; the job was asked to fail on the first failed row: "
          "--fail-on-error, fail_on_error=True in Python)");
    }
    std::lock_guard<std::mutex> lock(errors_mu_);
    row_errors_ += errors.size();
    for (int64_t k = 0; k < errors.size(); ++k) {
      // Rows that fail with the same message (every row of one failed request) are
      // one sample with a count.
      const std::string& message = errors.messages[k];
      std::string key = step.name + '\0' + message;
      auto it = sample_index_.find(key);
      if (it != sample_index_.end()) {
        sample_repeats_[it->second] += 1;
        continue;
      }
      if (static_cast<int64_t>(row_error_samples_.size()) >= kMaxRowErrorSamples) continue;
      sample_index_.emplace(std::move(key), row_error_samples_.size());
      row_error_samples_.push_back("operator '" + step.name + "', " +
                                   WhereFor(source_, p, message) +
                                   ", batch at row " + std::to_string(first_row) +
                                   ", batch row " + std::to_string(errors.rows[k]) +
                                   ": " + message);
      sample_repeats_.push_back(0);
    }
    if (options_.error_sink != nullptr) {
      FailedRows failed;
      failed.operator_name = step.name;
      failed.partition = p;
      failed.partition_name = source_.partition_name(p);
      failed.first_row = first_row;
      failed.input = input;
      failed.errors = std::move(errors);
      arrow::Status st = options_.error_sink->Write(failed);
      if (!st.ok()) {
        return st.WithMessage("error sink failed: ", st.message());
      }
    }
    return arrow::Status::OK();
  }

  // Whether the batch (p, seq) of `bytes` bytes may enter the buffer now. mu_ held.
  bool Admissible(int64_t p, int64_t seq, int64_t bytes) const {
    bool bytes_ok = buffered_bytes_ + bytes <= max_bytes_;
    if (options_.unordered) {
      // Any batch unblocks the sink; a single batch over the byte bound goes alone.
      return buffered_batches_ == 0 || (buffered_batches_ < max_batches_ && bytes_ok);
    }
    // The batch the sink waits for always enters; one slot is kept free for it, so the
    // count stays <= max_batches_ and the buffer can never fill up with later batches
    // while the one that unblocks the sink waits outside. Its bytes are the only ones
    // allowed over the byte bound.
    if (p == head_partition_ && seq == head_seq_) return true;
    return buffered_batches_ + 1 < max_batches_ && bytes_ok;
  }

  // Hands a finished batch (or an end marker) to the sink, blocking while the buffer is
  // full. Returns early, dropping the item, when the run stops.
  void Deliver(int64_t p, int64_t seq, Item item) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (item.batch != nullptr) {
        space_cv_.wait(lock,
                       [&] { return stop_.load() || Admissible(p, seq, item.bytes); });
        if (stop_.load()) return;
        buffered_batches_ += 1;
        buffered_bytes_ += item.bytes;
        peak_batches_ = std::max(peak_batches_, buffered_batches_);
        peak_bytes_ = std::max(peak_bytes_, buffered_bytes_);
      }
      if (options_.unordered) {
        arrived_.push_back(std::move(item));
      } else {
        pending_.emplace(std::make_pair(p, seq), std::move(item));
      }
    }
    items_cv_.notify_one();
  }

  // Takes the next item for the sink if it has arrived. mu_ held.
  bool TryPop(Item* item) {
    if (options_.unordered) {
      if (arrived_.empty()) return false;
      *item = std::move(arrived_.front());
      arrived_.pop_front();
    } else {
      if (pending_.empty()) return false;
      auto it = pending_.begin();
      if (it->first != std::make_pair(head_partition_, head_seq_)) return false;
      *item = std::move(it->second);
      pending_.erase(it);
      if (item->batch == nullptr) {
        head_partition_ += 1;
        head_seq_ = 0;
      } else {
        head_seq_ += 1;
      }
    }
    if (item->batch != nullptr) {
      buffered_batches_ -= 1;
      buffered_bytes_ -= item->bytes;
    }
    return true;
  }

  void SinkLoop() {
    int64_t finished = 0;
    while (finished < num_partitions_) {
      Item item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        while (true) {
          if (stop_.load()) return;
          if (CancelRequested()) {
            lock.unlock();
            Fail(arrow::Status::Cancelled("run cancelled after ", finished, " of ",
                                          num_partitions_, " partitions were written"));
            return;
          }
          if (TryPop(&item)) break;
          items_cv_.wait_for(lock, kPollInterval);
        }
      }
      space_cv_.notify_all();
      auto t0 = Clock::now();
      arrow::Status st;
      const int64_t p = item.partition;
      if (item.batch == nullptr) {
        st = sink_->FinishPartition(p);
        finished += 1;
        if (st.ok() && options_.progress != nullptr) options_.progress->PartDone();
      } else {
        int64_t before = sink_->bytes_written();
        st = sink_->Write(p, item.batch);
        int64_t rows = item.batch->num_rows();
        sink_stats_.batches_in += 1;
        sink_stats_.rows_in += rows;
        if (st.ok()) {
          sink_stats_.batches_out += 1;
          sink_stats_.rows_out += rows;
          if (options_.progress != nullptr) {
            options_.progress->Add(rows, sink_->bytes_written() - before);
          }
        }
      }
      sink_stats_.seconds += Since(t0);
      if (!st.ok()) {
        Fail(st.WithMessage("sink failed writing ", Where(source_, p), ": ",
                            st.message()));
        return;
      }
    }
  }

  const Source& source_;
  std::vector<Executor::PlannedStep>& steps_;
  const RunOptions& options_;
  const int workers_;
  const int64_t max_batches_;
  const int64_t max_bytes_;
  BatchSink* sink_;
  const int64_t num_partitions_;
  // Source rows count as input read on the progress line (not a grouped step's buckets).
  const bool count_reads_;

  std::atomic<bool> stop_{false};
  std::atomic<int64_t> next_partition_{0};

  std::mutex mu_;
  std::condition_variable space_cv_;  // workers: buffer space or their turn
  std::condition_variable items_cv_;  // sink: the next item arrived
  arrow::Status error_;               // GUARDED_BY(mu_)
  std::map<std::pair<int64_t, int64_t>, Item> pending_;  // GUARDED_BY(mu_)
  std::deque<Item> arrived_;                             // GUARDED_BY(mu_)
  int64_t head_partition_ = 0, head_seq_ = 0;            // GUARDED_BY(mu_)
  int64_t buffered_batches_ = 0, buffered_bytes_ = 0;    // GUARDED_BY(mu_)
  int64_t peak_batches_ = 0, peak_bytes_ = 0;            // GUARDED_BY(mu_)
  std::vector<StageStats> merged_;                       // GUARDED_BY(mu_)

  std::mutex factory_mu_;  // one stateful factory call at a time

  std::mutex errors_mu_;
  int64_t row_errors_ = 0;                      // GUARDED_BY(errors_mu_)
  std::vector<std::string> row_error_samples_;  // GUARDED_BY(errors_mu_)
  std::vector<int64_t> sample_repeats_;         // GUARDED_BY(errors_mu_): per sample
  // GUARDED_BY(errors_mu_): operator + '\0' + message -> index of its sample.
  std::unordered_map<std::string, size_t> sample_index_;

  StageStats sink_stats_;         // sink thread only
  StageStats worker_sink_stats_;  // GUARDED_BY(mu_): concurrent sink calls on workers
};

}  // namespace

Executor::~Executor() = default;

arrow::Result<std::unique_ptr<Executor>> Executor::Make(std::shared_ptr<Source> source,
                                                        std::vector<PipelineStep> steps,
                                                        RunOptions options) {
  if (source == nullptr) return arrow::Status::Invalid("pipeline has no source");
  std::unique_ptr<Executor> ex(new Executor());
  ex->source_ = std::move(source);
  ex->options_ = options;
  std::shared_ptr<arrow::Schema> schema = ex->source_->schema();
  if (schema == nullptr) return arrow::Status::Invalid("source has no schema");
  // The first grouped step's map-side step (GroupedOperator::PreGroup) runs as a batch
  // step just before it; later grouped steps are expanded by the recursive Make().
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].kind != PipelineStep::Kind::kGrouped) continue;
    if (steps[i].grouped != nullptr) {
      if (auto pre = steps[i].grouped->PreGroup()) {
        PipelineStep p;
        p.kind = PipelineStep::Kind::kBatch;
        p.batch = std::move(pre);
        steps.insert(steps.begin() + static_cast<std::ptrdiff_t>(i), std::move(p));
      }
    }
    break;
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    PipelineStep& s = steps[i];
    if (s.kind == PipelineStep::Kind::kGrouped) {
      auto stage = GroupedStage::Make(s, schema);
      if (!stage.ok()) {
        return stage.status().WithMessage("step ", i + 1, ": ", stage.status().message());
      }
      ex->grouped_ = std::move(*stage);
      std::vector<PipelineStep> rest(std::make_move_iterator(steps.begin() + i + 1),
                                     std::make_move_iterator(steps.end()));
      auto next = Make(ex->grouped_->source(), std::move(rest), options);
      if (!next.ok()) {
        return next.status().WithMessage("after step ", i + 1, " (grouped operator '",
                                         ex->grouped_->name(),
                                         "'): ", next.status().message());
      }
      ex->next_ = std::move(*next);
      ex->next_->nested_ = true;
      break;
    }
    PlannedStep p;
    p.kind = s.kind;
    auto plan_error = [&](const arrow::Status& st) {
      // One line: the CLI prints errors as one line.
      std::string fields;
      for (const auto& f : schema->fields()) {
        fields += (fields.empty() ? "" : ", ") + f->ToString();
      }
      return st.WithMessage("step ", i + 1, " (operator '", p.name,
                            "') does not fit its input (", fields, "): ", st.message());
    };
    switch (s.kind) {
      case PipelineStep::Kind::kScalar: {
        if (s.scalar == nullptr)
          return arrow::Status::Invalid("step ", i + 1, " is null");
        p.kind_name = "scalar";
        p.name = s.scalar->name();
        p.scalar = s.scalar;
        auto field = s.scalar->OutputField(*schema);
        if (!field.ok()) return plan_error(field.status());
        p.field = *field;
        if (p.field == nullptr) return plan_error(arrow::Status::Invalid("null field"));
        auto next = schema->AddField(schema->num_fields(), p.field);
        if (!next.ok()) return plan_error(next.status());
        p.output_schema = *next;
        break;
      }
      case PipelineStep::Kind::kBatch: {
        if (s.batch == nullptr) return arrow::Status::Invalid("step ", i + 1, " is null");
        p.kind_name = "batch";
        p.name = s.batch->name();
        p.batch = s.batch;
        auto out = s.batch->OutputSchema(*schema);
        if (!out.ok()) return plan_error(out.status());
        p.output_schema = *out;
        break;
      }
      case PipelineStep::Kind::kGrouped:
        return arrow::Status::UnknownError("grouped step planned as a chain step");
      case PipelineStep::Kind::kStateful: {
        if (!s.stateful) return arrow::Status::Invalid("step ", i + 1, " has no factory");
        p.kind_name = "stateful";
        p.factory = s.stateful;
        auto probe = s.stateful();
        if (!probe.ok()) {
          return probe.status().WithMessage(
              "step ", i + 1,
              ": creating the stateful operator failed: ", probe.status().message());
        }
        p.probe = std::move(*probe);
        if (p.probe == nullptr) {
          return arrow::Status::Invalid("step ", i + 1, ": the factory returned null");
        }
        p.name = p.probe->name();
        p.min_batch_rows = std::max<int64_t>(0, p.probe->min_batch_rows());
        auto out = p.probe->OutputSchema(*schema);
        if (!out.ok()) return plan_error(out.status());
        p.output_schema = *out;
        break;
      }
    }
    if (p.output_schema == nullptr) {
      return plan_error(arrow::Status::Invalid("null output schema"));
    }
    schema = p.output_schema;
    ex->steps_.push_back(std::move(p));
  }
  ex->output_schema_ = ex->next_ != nullptr ? ex->next_->output_schema() : schema;
  // Schema::Equals caches fingerprints lazily; computing them here, on one thread,
  // keeps the workers' comparisons read-only.
  for (const auto& s : {ex->source_->schema(), schema}) {
    (void)s->fingerprint();
    (void)s->metadata_fingerprint();
  }
  for (const auto& p : ex->steps_) {
    (void)p.output_schema->fingerprint();
    (void)p.output_schema->metadata_fingerprint();
  }
  return ex;
}

namespace {

// Hands the grouped step's buckets on as `groups` output partitions, each a run of
// consecutive buckets, so that a grouped job writes one file per group (and the
// writer's size limits) instead of one per bucket. FinishPartition(g) is passed on once
// every bucket of group g finished. Not thread-safe: used by the Run thread only.
class BucketGroupSink : public BatchSink {
 public:
  BucketGroupSink(BatchSink* inner, int64_t buckets, int64_t groups)
      : inner_(inner), buckets_(buckets), groups_(groups), left_(groups, 0) {
    for (int64_t b = 0; b < buckets_; ++b) left_[GroupOf(b)] += 1;
  }
  arrow::Status Write(int64_t partition,
                      const std::shared_ptr<arrow::RecordBatch>& batch) override {
    return inner_->Write(GroupOf(partition), batch);
  }
  arrow::Status FinishPartition(int64_t partition) override {
    const int64_t g = GroupOf(partition);
    if (--left_[g] > 0) return arrow::Status::OK();
    return inner_->FinishPartition(g);
  }
  int64_t bytes_written() const override { return inner_->bytes_written(); }

 private:
  int64_t GroupOf(int64_t bucket) const { return bucket * groups_ / buckets_; }
  BatchSink* inner_;
  const int64_t buckets_;
  const int64_t groups_;
  std::vector<int64_t> left_;
};

}  // namespace

arrow::Result<RunStats> Executor::Run(BatchSink* sink) {
  if (ran_) return arrow::Status::Invalid("Executor::Run called twice");
  ran_ = true;
  if (sink == nullptr) return arrow::Status::Invalid("Executor::Run: null sink");
  int workers = options_.workers;
  if (workers <= 0) workers = static_cast<int>(std::thread::hardware_concurrency());
  workers = std::max(workers, 1);
  int64_t max_batches = options_.max_buffered_batches;
  if (max_batches <= 0) max_batches = int64_t{4} * workers;
  Progress* progress = options_.progress;
  if (progress != nullptr && !nested_) progress->SetTotalRows(source_->total_rows());
  if (grouped_ == nullptr) {
    RunState state(*source_, &steps_, options_, workers, max_batches, sink, !nested_);
    return state.Run();
  }
  // Phase 1 (steps before the grouped step, into its buckets), then phase 2 (the
  // executor of the remaining steps over the buckets). End() removes the spill folder
  // on every path.
  struct EndGuard {
    GroupedStage* stage;
    ~EndGuard() { (void)stage->End(); }
  } guard{grouped_.get()};
  ARROW_RETURN_NOT_OK(grouped_->Begin(options_));
  // The progress line names the phases; a nested executor's phase 1 (the buckets of
  // the grouped step before) was announced by its parent.
  if (progress != nullptr && !nested_) {
    progress->BeginPhase("read+shuffle", source_->num_partitions(), /*reading=*/true,
                         /*final=*/false);
  }
  RunState phase1(*source_, &steps_, options_, workers, max_batches,
                  grouped_->partition_sink(), !nested_);
  ARROW_ASSIGN_OR_RAISE(RunStats first, phase1.Run());
  grouped_->FinishPartitioning();
  if (progress != nullptr) {
    const bool last = next_->grouped_ == nullptr;
    progress->BeginPhase(last ? "groups" : "groups+shuffle",
                         grouped_->source()->num_partitions(), /*reading=*/false, last);
  }
  const int64_t buckets = std::max<int64_t>(1, next_->source_->num_partitions());
  BucketGroupSink grouped_sink(sink, buckets, std::min<int64_t>(workers, buckets));
  ARROW_ASSIGN_OR_RAISE(RunStats second, next_->Run(&grouped_sink));
  // One stage list: source, steps before, the grouped step, steps after, sink.
  RunStats stats = second;
  stats.partitions = first.partitions;
  stats.rows_read = first.rows_read;
  stats.row_errors += first.row_errors;
  for (const auto& m : first.row_error_samples) {
    if (stats.row_error_samples.size() < static_cast<size_t>(kMaxRowErrorSamples)) {
      stats.row_error_samples.push_back(m);
    }
  }
  stats.peak_buffered_batches =
      std::max(first.peak_buffered_batches, second.peak_buffered_batches);
  stats.peak_buffered_bytes =
      std::max(first.peak_buffered_bytes, second.peak_buffered_bytes);
  StageStats grouped;
  grouped.name = grouped_->name();
  grouped.kind = "grouped";
  const StageStats& partitioned = first.stages.back();  // phase 1 sink
  const StageStats& read = second.stages.front();       // phase 2 source
  grouped.batches_in = partitioned.batches_in;
  grouped.rows_in = partitioned.rows_in;
  grouped.batches_out = read.batches_out;
  grouped.rows_out = read.rows_out;
  grouped.seconds = partitioned.seconds + read.seconds;
  grouped_->FillStats(&stats, &grouped);
  stats.stages.assign(first.stages.begin(), first.stages.end() - 1);
  stats.stages.push_back(grouped);
  stats.stages.insert(stats.stages.end(), second.stages.begin() + 1, second.stages.end());
  stats.wall_seconds = first.wall_seconds + second.wall_seconds;
  ARROW_RETURN_NOT_OK(grouped_->End());
  return stats;
}

arrow::Status DatasetWriterSink::Write(int64_t partition,
                                       const std::shared_ptr<arrow::RecordBatch>& batch) {
  return writer_->Write(partition, batch);
}

arrow::Status DatasetWriterSink::FinishPartition(int64_t partition) {
  return writer_->FinishPartition(partition);
}

int64_t DatasetWriterSink::bytes_written() const { return writer_->bytes_written(); }

arrow::Status CollectSink::Write(int64_t partition,
                                 const std::shared_ptr<arrow::RecordBatch>& batch) {
  batches_.push_back(batch);
  return arrow::Status::OK();
}

arrow::Status CollectSink::FinishPartition(int64_t partition) {
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Table>> CollectSink::ToTable(
    const std::shared_ptr<arrow::Schema>& schema) const {
  return arrow::Table::FromRecordBatches(schema, batches_);
}

}  // namespace dlprep::exec
