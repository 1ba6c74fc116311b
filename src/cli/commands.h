#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>
#include <arrow/status.h>

namespace dlprep::cli {

/// A subcommand: its CLI11 app and what runs when it was chosen.
struct Command {
  CLI::App* app = nullptr;
  std::function<arrow::Status()> run;
};

void AddConvertCommand(CLI::App* root, std::vector<Command>* commands);
void AddInspectCommand(CLI::App* root, std::vector<Command>* commands);
void AddFilesCommand(CLI::App* root, std::vector<Command>* commands);
void AddGenCommand(CLI::App* root, std::vector<Command>* commands);
void AddWindowsCommand(CLI::App* root, std::vector<Command>* commands);
void AddAudioCommand(CLI::App* root, std::vector<Command>* commands);
void AddScoreHttpCommand(CLI::App* root, std::vector<Command>* commands);
void AddRunCommand(CLI::App* root, std::vector<Command>* commands);
void AddScoreCommand(CLI::App* root, std::vector<Command>* commands);


}  // namespace dlprep::cli
