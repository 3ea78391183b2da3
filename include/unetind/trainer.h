// Training with NVIDIA's recipe (SPEC.md section 2): one DAGM class, the
// chosen loss plus weight decay, centered RMSProp under a staircase learning
// rate, checkpoints that survive a kill, and exact resume.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "unetind/backend.h"
#include "unetind/dataset.h"
#include "unetind/loss.h"
#include "unetind/model.h"
#include "unetind/optimizer.h"

namespace unetind {

// One optimisation step on a batch for a caller that keeps the training
// state itself (tests, comparisons): a TrainingExecutor that loads `params`
// and `optimizer` before the step and reads them back after it. The trainer
// and `benchmark --mode train` keep the state in the executor instead.
class TrainingStep {
 public:
  TrainingStep(const ModelConfig& model, Backend& backend, int batch, int image_size, Precision precision,
               LossKind loss, double weight_decay, ConvAlgorithm conv_algorithm = ConvAlgorithm::Auto);
  // images, masks: batch x size x size. Updates `params` and `optimizer`
  // (whose configuration the step uses). Throws Error when the loss is not
  // finite, before anything is updated.
  StepResult run(std::vector<NamedTensor>& params, RmsProp& optimizer, const float* images, const float* masks,
                 float lr);

 private:
  Backend& backend_;
  Graph graph_;
  ExecConfig exec_config_;
  TrainingConfig training_;
  std::unique_ptr<TrainingExecutor> exec_;
};

// Batches the training loader prepares ahead of the step.
constexpr int kTrainPrefetch = 4;

struct TrainOptions {
  std::string data_dir;
  int class_id = 1;
  std::string out_dir;
  int steps = 2500;
  int batch = 16;
  int image_size = kModelImageSize;
  LrSchedule lr;
  RmsPropConfig rmsprop;
  double weight_decay = 1e-5;
  LossKind loss = LossKind::Adaptive;
  bool augment = true;
  bool all_images = false;  // NVIDIA trains on the defective images only
  uint64_t seed = 0;
  ModelConfig model;
  Initializer init = Initializer::HeNormal;
  std::string init_from;  // weights to start from instead of `init` (safetensors or a TF checkpoint)
  std::string device = "cpu";
  int threads = 0;
  int loader_threads = 2;
  Precision precision = Precision::F32;
  ConvAlgorithm conv_algorithm = ConvAlgorithm::Auto;
  int checkpoint_every = 1000;
  int display_every = 50;
  int eval_every = 0;  // 0: no evaluation during training
  bool resume = false;
  bool overwrite = false;  // replace a run found in out_dir (refused otherwise, unless resume)
};

nlohmann::json to_json(const TrainOptions& options);

// Every option checked before a run touches anything: counts and
// intervals, the learning-rate schedule and RMSProp's coefficients (finite,
// in range), the image size, the thread counts, and the memory the batch
// needs at that size (a lower bound, against what this process may use).
// Errors name the command-line flag.
void check_train_options(const TrainOptions& options);

struct StepLog {
  int64_t step = 0;  // steps completed
  StepResult result;
  float lr = 0;
  double images_per_second = 0;
};

struct TrainHooks {
  std::function<void(const StepLog&)> on_log;                   // every display_every steps and the last
  std::function<void(int64_t step, int64_t total)> on_progress;  // every step
  // Called every eval_every steps with the current weights; the JSON it
  // returns is logged to metrics.jsonl as {"step": s, "eval": ...}.
  std::function<nlohmann::json(const Parameters&, int64_t step)> evaluate;
  std::function<void(const std::string&)> on_message;
};

struct TrainResult {
  int64_t step = 0;        // steps completed
  bool interrupted = false;
  int signal = 0;          // the signal that stopped it
};

// Runs (or with options.resume, continues) a training run in options.out_dir:
// model.safetensors, checkpoint.safetensors, config.json, metrics.jsonl.
// Before it writes anything it checks the options, the data (check_samples)
// and the run it finds: the directory is locked against other runs, a run
// in it is continued only with resume and replaced only with overwrite, and
// a refused run leaves the directory as it was. When *stop becomes non-zero
// (a signal number, set by the caller's handler) the current step finishes,
// a checkpoint is written and the run returns interrupted. A non-finite
// loss throws Error and keeps the last checkpoint.
//
// With a `group` of several ranks (data_parallel.h, join_process_group) the
// run is data parallel: every rank calls train() with the same options, and
// each trains on its shard of every global batch of options.batch. Rank 0
// alone reads and writes options.out_dir and calls the hooks; the others
// start from rank 0's state. A stop signal on any rank stops every rank
// after the same step; a resume must use the same number of ranks.
TrainResult train(const TrainOptions& options, const TrainHooks& hooks, const std::atomic<int>* stop,
                  Communicator* group = nullptr);

// Makes `run_dir` a run that train() with options.resume continues from
// another trainer's state: the weights, the RMSProp slots (under the names
// RmsProp::state gives them) and the step reached. With no options and no
// data-stream position in it, the resumed run takes its options as given and
// starts its data stream afresh; the learning rate follows the step. Missing
// or misshapen slots are an Error naming `source`, as is an existing checkpoint
// in `run_dir`.
void write_imported_checkpoint(const std::string& run_dir, const Parameters& params,
                               const std::vector<NamedTensor>& slots, int64_t step, const RmsPropConfig& rmsprop,
                               const std::string& source);

// The samples a run or an evaluation uses: a generic folder data set when
// `data_dir` holds images/ (or <split>/images/), else DAGM class `class_id`.
std::vector<Sample> open_split(const std::string& data_dir, int class_id, Split split);

}  // namespace unetind
