// The dlprep command: parses flags, runs one subcommand, turns a Status into one line
// on stderr and an exit code (0 ok, 1 job failed, 2 usage, 130 interrupted: SIGINT or
// SIGTERM at any time after main() began).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <arrow/memory_pool.h>

#include "cli/commands.h"
#include "cli/common.h"

namespace {

// Arrow's default allocator in the pyarrow wheel is mimalloc. jemalloc measured better
// for our jobs (docs/commands/common-options.md: `dlprep windows` on 17M events used
// 18% less CPU, most of it the kernel zeroing pages that mimalloc had handed back, and
// 20% less peak memory), so the CLI makes it the default unless the user chose with
// ARROW_DEFAULT_MEMORY_POOL or this Arrow lacks it. Must run before any allocation.
//
// Under --memory-limit the system allocator (glibc malloc) is used instead: with the
// engine's pool releasing freed memory (malloc_trim) as a job goes, its resident size
// stays within a few MiB of what the pool holds, where jemalloc's stayed some 40 MiB
// above it (bench/memory_limit.py); the limit is about the resident size.
void ChooseAllocator(int argc, char** argv) {
  if (std::getenv("ARROW_DEFAULT_MEMORY_POOL") != nullptr) return;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--memory-limit", 14) == 0) {
      setenv("ARROW_DEFAULT_MEMORY_POOL", "system", /*overwrite=*/0);
      return;
    }
  }
  arrow::MemoryPool* pool = nullptr;
  if (arrow::jemalloc_memory_pool(&pool).ok()) {
    setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc", /*overwrite=*/0);
  }
}

// Names of the subcommands, in the order they were added.
std::string CommandNames(const CLI::App& app) {
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  return names;
}

// A usage error: one line naming what is wrong, a pointer to --help, exit code 2.
int UsageError(const CLI::App& app, const std::string& command, const std::string& message) {
  const std::string prefix = command.empty() ? "dlprep" : "dlprep " + command;
  std::fprintf(stderr, "%s: usage error: %s\nRun '%s --help' for the options.\n",
               prefix.c_str(), message.c_str(), prefix.c_str());
  return 2;
}

// Parses the command line; returns -1 when a command was chosen, else the exit code
// (0 after --help or --version, 2 for a usage error).
int Parse(CLI::App& app, int argc, char** argv) {
  // An unknown command, said as such (CLI11 would report a missing subcommand or an
  // unexpected argument).
  const CLI::App& root = app;
  if (argc > 1 && argv[1][0] != '-' &&
      root.get_subcommands([&](const CLI::App* sub) { return sub->check_name(argv[1]); })
          .empty()) {
    return UsageError(app, "",
                      std::string("unknown command '") + argv[1] +
                          "'; commands: " + CommandNames(app));
  }
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string command;
    for (const CLI::App* sub : app.get_subcommands()) command = sub->get_name();
    // Arguments no option took: CLI11 reports a missing required option first, which
    // would hide a misspelt one.
    std::vector<std::string> unknown_options, unexpected;
    for (const std::string& arg : app.remaining(/*recurse=*/true)) {
      (arg.size() > 1 && arg[0] == '-' ? unknown_options : unexpected).push_back(arg);
    }
    auto quoted = [](const std::vector<std::string>& items) {
      std::string out;
      for (const auto& item : items) out += (out.empty() ? "'" : ", '") + item + "'";
      return out;
    };
    if (!unknown_options.empty()) {
      return UsageError(app, command,
                        (unknown_options.size() == 1 ? "unknown option " : "unknown options ") +
                            quoted(unknown_options));
    }
    if (!unexpected.empty()) {
      return UsageError(app, command, "unexpected argument(s) " + quoted(unexpected));
    }
    if (command.empty() && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
      return UsageError(app, "", "a command is required; commands: " + CommandNames(app));
    }
    return UsageError(app, command, e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // First: a Ctrl-C while flags are parsed, inputs globbed and opened must end in the
  // orderly way (exit 130, nothing written), not kill the process.
  dlprep::cli::InstallCancelHandler();
  ChooseAllocator(argc, argv);
  CLI::App app{
      "dlprep: native data preparation for deep learning over Apache Arrow.\n"
      "Reads Parquet, CSV, JSON lines, TFRecord and raw files; writes TFRecord\n"
      "(tf.train.Example), Parquet and CSV with an atomic commit and a manifest.",
      "dlprep"};
  app.set_version_flag("--version", "dlprep 0.1.0");
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  dlprep convert --input data/events.parquet --output out/tfr --compression gzip\n"
      "  dlprep inspect out/tfr --head 3 --verify\n"
      "  dlprep files 'clips/**/*.wav'\n"
      "  dlprep score --model m.pt --input features/ --model-input log_mel --argmax -o out/\n"
      "Run 'dlprep COMMAND --help' for the options of a command.");
  std::vector<dlprep::cli::Command> commands;
  dlprep::cli::AddConvertCommand(&app, &commands);
  dlprep::cli::AddInspectCommand(&app, &commands);
  dlprep::cli::AddFilesCommand(&app, &commands);
  dlprep::cli::AddGenCommand(&app, &commands);
  dlprep::cli::AddWindowsCommand(&app, &commands);
  dlprep::cli::AddAudioCommand(&app, &commands);
  dlprep::cli::AddScoreHttpCommand(&app, &commands);
  dlprep::cli::AddRunCommand(&app, &commands);
  dlprep::cli::AddScoreCommand(&app, &commands);
  if (int code = Parse(app, argc, argv); code >= 0) return code;
  for (auto& cmd : commands) {
    if (!cmd.app->parsed()) continue;
    arrow::Status st = dlprep::cli::CheckInterrupted();
    // The module edge: an exception from a library (JSON, YAML, the standard library)
    // that nothing below caught is a failed job with a message, not std::terminate.
    try {
      if (st.ok()) st = cmd.run();
    } catch (const std::exception& e) {
      st = arrow::Status::UnknownError("internal error: ", e.what());
    } catch (...) {
      st = arrow::Status::UnknownError("internal error: unknown exception");
    }
    if (st.ok()) return 0;
    const char* name = cmd.app->get_name().c_str();
    // A signal can also surface as another error (a system call cut short by it).
    if (st.IsCancelled() || !dlprep::cli::CheckInterrupted().ok()) {
      if (st.message().rfind("interrupted", 0) == 0) {
        std::fprintf(stderr, "dlprep %s: %s\n", name, st.message().c_str());
      } else {
        std::fprintf(stderr, "dlprep %s: interrupted: %s\n", name, st.message().c_str());
      }
      return 130;
    }
    std::fprintf(stderr, "dlprep %s: error: %s\n", name, st.message().c_str());
    return 1;
  }
  return 2;
}
