#include "unetind/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "train/rank_agreement.h"
#include "train/run_directory.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/data_parallel.h"
#include "unetind/loader.h"
#include "unetind/tf_checkpoint.h"

namespace unetind {

namespace fs = std::filesystem;

namespace {

const char* kCheckpointFormat = "unet-industrial-checkpoint";

// The options that decide the data stream and the model: a resumed run must
// keep them, or it would not continue the same run. Each with its option in
// config.json and the command-line flag that sets it.
struct ResumeInvariant {
  const char* key;
  const char* flag;
};
constexpr ResumeInvariant kResumeInvariants[] = {
    {"class_id", "--class"}, {"batch", "--batch"},           {"image_size", "--image-size"},
    {"seed", "--seed"},      {"augment", "--no-augment"},    {"all_images", "--all-images"},
    {"variant", "--variant"}, {"activation", "--activation"}, {"loss", "--loss"}};

struct RunFiles {
  std::string model, checkpoint, config, metrics;
  explicit RunFiles(const std::string& dir)
      : model((fs::path(dir) / "model.safetensors").string()),
        checkpoint((fs::path(dir) / "checkpoint.safetensors").string()),
        config((fs::path(dir) / "config.json").string()),
        metrics((fs::path(dir) / "metrics.jsonl").string()) {}
};

// metrics.jsonl: one JSON object a line, appended with a single write() each
// (no fsync per line: that cost more than the training steps of small runs)
// and synced at every checkpoint. A kill can leave a torn last line; loading
// skips it. A resume rewrites the file atomically with the lines up to the
// checkpoint's step, so the log never has a step twice.
class MetricsLog {
 public:
  explicit MetricsLog(std::string path) : path_(std::move(path)) {}
  ~MetricsLog() {
    if (fd_ >= 0) ::close(fd_);
  }

  void start_new() { open_for_append(O_TRUNC); }

  void resume_at(int64_t step) {
    std::ifstream in(path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("step")) continue;
      if (j["step"].get<int64_t>() <= step) kept += line + "\n";
    }
    write_file_atomic(path_, kept);
    open_for_append(0);
  }

  void add(const nlohmann::json& j) {
    const std::string line = j.dump() + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      throw_file_error(path_, std::string("write failed: ") + std::strerror(errno));
  }
  void sync() const { ::fsync(fd_); }

 private:
  void open_for_append(int extra_flags) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra_flags, 0644);
    if (fd_ < 0) throw_file_error(path_, std::string("cannot open: ") + std::strerror(errno));
  }
  std::string path_;
  int fd_ = -1;
};

bool is_optimizer_slot(const std::string& name) { return name.find("/RMSProp") != std::string::npos; }

// `meta`: what this kind of checkpoint records besides the model and step.
void write_checkpoint_files(const RunFiles& files, const Parameters& params, std::vector<NamedTensor> optimizer_state,
                            int64_t step, std::map<std::string, std::string> meta) {
  std::vector<NamedTensor> tensors = params.tensors;
  for (auto& slot : optimizer_state) tensors.push_back(std::move(slot));
  meta["format"] = kCheckpointFormat;
  meta["variant"] = to_string(params.config.variant);
  meta["activation"] = to_string(params.config.activation);
  meta["step"] = std::to_string(step);
  // The weights first: if a kill lands between the two files, model.safetensors
  // is never behind the checkpoint a resume continues from.
  save_parameters(files.model, params, {{"step", std::to_string(step)}});
  write_safetensors(files.checkpoint, tensors, meta);
}

// `ranks`: the processes of a data-parallel run, which a resume must keep.
void save_checkpoint(const RunFiles& files, const Parameters& params, std::vector<NamedTensor> optimizer_state,
                     int64_t step, const LoaderState& loader_state, const TrainOptions& options, int ranks) {
  write_checkpoint_files(files, params, std::move(optimizer_state), step,
                         {{"loader_state", nlohmann::json(loader_state).dump()},
                          {"options", to_json(options).dump()},
                          {"ranks", std::to_string(ranks)}});
}

struct Restored {
  Parameters params;
  int64_t step = 0;
  std::optional<LoaderState> loader_state;  // none in an imported checkpoint: the stream starts afresh
};

Restored load_checkpoint(const std::string& path, const TrainOptions& options, int ranks, RmsProp& optimizer) {
  SafetensorsFile file = read_safetensors(path);
  auto meta = [&](const std::string& key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw_file_error(path, "not a training checkpoint (no '" + key + "' metadata)");
    return it->second;
  };
  if (meta("format") != kCheckpointFormat) throw_file_error(path, "not a unet-industrial training checkpoint");
  Restored r;
  // An imported checkpoint (write_imported_checkpoint) has neither options
  // nor a data-stream position.
  const bool imported = !file.metadata.contains("options");
  try {
    if (!imported) {
      const nlohmann::json saved = nlohmann::json::parse(meta("options"));
      const nlohmann::json now = to_json(options);
      for (const ResumeInvariant& v : kResumeInvariants)
        if (saved.at(v.key) != now.at(v.key))
          throw_file_error(path, std::string("cannot resume with ") + v.key + " = " + now.at(v.key).dump() + " (" +
                                     v.flag + "): the run was started with " + saved.at(v.key).dump());
      r.loader_state = nlohmann::json::parse(meta("loader_state")).get<LoaderState>();
      // Each rank's shard, and with it what the Dice losses average, depends
      // on the number of ranks (a checkpoint from before data parallelism:
      // 1). An imported checkpoint starts its data stream afresh, on any.
      const auto saved_ranks = file.metadata.find("ranks");
      const int started_with = saved_ranks == file.metadata.end() ? 1 : std::stoi(saved_ranks->second);
      if (started_with != ranks)
        throw_file_error(path, "cannot resume with " + std::to_string(ranks) +
                                   " process(es): the run was started with " + std::to_string(started_with) +
                                   " (mpirun -np " + std::to_string(started_with) + ")");
    }
    r.step = std::stoll(meta("step"));
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(path, std::string("bad checkpoint metadata: ") + e.what());
  } catch (const std::logic_error&) {  // std::stoll's
    throw_file_error(path, "bad checkpoint metadata: step '" + meta("step") + "' is not a number");
  }
  if (r.step < 0) throw_file_error(path, "bad checkpoint metadata: negative step " + std::to_string(r.step));
  if (imported && (meta("variant") != to_string(options.model.variant) ||
                   meta("activation") != to_string(options.model.activation)))
    throw_file_error(path, "holds a " + meta("variant") + " " + meta("activation") + " model, not " +
                               to_string(options.model.variant) + " " + to_string(options.model.activation));
  r.params.config = options.model;
  std::vector<NamedTensor> weights;
  for (const NamedTensor& t : file.tensors)
    if (!is_optimizer_slot(t.name)) weights.push_back(t);
  r.params.tensors = match_parameters(options.model, weights, path);
  optimizer.load_state(r.params.tensors, file.tensors, path);
  return r;
}

std::vector<Sample> training_samples(const TrainOptions& options) {
  std::vector<Sample> all = open_split(options.data_dir, options.class_id, Split::Train);
  if (options.all_images) return all;
  std::vector<Sample> defective;
  for (const Sample& s : all)
    if (s.defective) defective.push_back(s);
  if (defective.empty())
    throw_file_error(options.data_dir, "the Train split of class " + std::to_string(options.class_id) +
                                           " has no defective images (train on all with --all-images)");
  return defective;
}

// A run in the directory (any of its files) is replaced only on request.
void refuse_to_replace_run(const RunFiles& files, const TrainOptions& options) {
  if (options.overwrite) return;
  for (const std::string& f : {files.checkpoint, files.model, files.config, files.metrics}) {
    if (!fs::exists(f)) continue;
    std::string what = "a training run";
    if (f == files.checkpoint) {
      const auto meta = read_safetensors(files.checkpoint).metadata;
      if (auto it = meta.find("step"); it != meta.end()) what += " at step " + it->second;
    }
    throw_file_error(options.out_dir, "holds " + what + " (" + fs::path(f).filename().string() +
                                          "): continue it with --resume, or replace it with --overwrite");
  }
}

// A float option as the decimal the user wrote (1e-4, not 0.0001000000047).
double decimal(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return std::strtod(buf, nullptr);
}

}  // namespace

nlohmann::json to_json(const TrainOptions& o) {
  return {{"data_dir", o.data_dir},
          {"class_id", o.class_id},
          {"steps", o.steps},
          {"batch", o.batch},
          {"image_size", o.image_size},
          {"lr", decimal(o.lr.base)},
          {"lr_decay_steps", o.lr.decay_steps},
          {"lr_decay_factor", decimal(o.lr.factor)},
          {"rmsprop_decay", decimal(o.rmsprop.decay)},
          {"rmsprop_momentum", decimal(o.rmsprop.momentum)},
          {"rmsprop_epsilon", decimal(o.rmsprop.epsilon)},
          {"rmsprop_centered", o.rmsprop.centered},
          {"weight_decay", o.weight_decay},
          {"loss", to_string(o.loss)},
          {"augment", o.augment},
          {"all_images", o.all_images},
          {"seed", o.seed},
          {"variant", to_string(o.model.variant)},
          {"activation", to_string(o.model.activation)},
          {"init", to_string(o.init)},
          {"init_from", o.init_from},
          {"device", o.device},
          {"precision", to_string(o.precision)},
          {"conv", to_string(o.conv_algorithm)},
          {"checkpoint_every", o.checkpoint_every},
          {"eval_every", o.eval_every}};
}

TrainResult train(const TrainOptions& options, const TrainHooks& hooks, const std::atomic<int>* stop,
                  Communicator* group) {
  check_train_options(options);
  // Data parallel (data_parallel.h): rank 0 alone reads and writes the run
  // directory, logs and evaluates; every rank trains on its shard of each
  // global batch of options.batch.
  if (group && group->size() < 2) group = nullptr;
  const int rank = group ? group->rank() : 0, ranks = group ? group->size() : 1;
  const bool lead = rank == 0;
  if (ranks > 1 && options.batch % ranks != 0)
    throw Error("--batch " + std::to_string(options.batch) + " does not split evenly over " + std::to_string(ranks) +
                " processes: the global batch must be a multiple of mpirun -np");
  const RunFiles files(options.out_dir);
  auto message = [&](const std::string& m) {
    if (lead && hooks.on_message) hooks.on_message(m);
  };

  // Everything that can be refused is, before the run directory changes:
  // the options, the data, the weights to start from, the run found there,
  // the loader and the training executor.
  std::vector<Sample> samples = training_samples(options);
  if (const std::string warning = check_samples(samples); !warning.empty()) message(warning);
  std::optional<Parameters> init_weights;
  if (lead && !options.init_from.empty()) init_weights = load_weights(options.init_from, options.model);

  std::optional<RunDirectory> run_directory;
  RmsProp optimizer(options.rmsprop);
  Parameters params;
  StartState start;
  bool resuming = false;
  if (lead) {
    run_directory.emplace(options.out_dir);
    resuming = options.resume && fs::exists(files.checkpoint);
    if (resuming) {
      Restored r = load_checkpoint(files.checkpoint, options, ranks, optimizer);
      params = std::move(r.params);
      start.step = r.step;
      if (options.steps < start.step)
        throw_file_error(files.checkpoint, "the run has done " + std::to_string(start.step) +
                                               " steps, more than --steps " + std::to_string(options.steps) +
                                               ": give --steps above " + std::to_string(start.step) +
                                               " to continue it");
      if (r.loader_state && r.loader_state->sample_count != samples.size())
        throw_file_error(files.checkpoint, "cannot resume with --data " + options.data_dir +
                                               ": the run was trained on " +
                                               std::to_string(r.loader_state->sample_count) +
                                               " image(s), the data now has " + std::to_string(samples.size()));
      // An imported checkpoint has no data-stream position: its stream starts afresh.
      start.resumed = r.loader_state.has_value();
      if (r.loader_state) start.loader_state = *r.loader_state;
    } else {
      if (!options.resume) refuse_to_replace_run(files, options);
      params = init_weights ? std::move(*init_weights) : init_parameters(options.model, options.init, options.seed);
    }
  } else {
    params = init_parameters(options.model, options.init, options.seed);  // the shapes; rank 0's values follow
  }
  start.params = params.tensors;
  start.optimizer_state = optimizer.state(params.tensors);
  if (group) share_start_state(*group, start);
  int64_t step = start.step;
  if (step == options.steps) {
    message("the run in " + options.out_dir + " has done its " + std::to_string(step) +
            " steps already: nothing to do (give a larger --steps to continue it)");
    return {step, false, 0};
  }

  LoaderConfig loader_config{options.batch, options.image_size, options.augment, true, true,
                             options.seed, options.loader_threads, kTrainPrefetch};
  loader_config.shard = rank;
  loader_config.shards = ranks;
  std::unique_ptr<Loader> loader = start.resumed ? std::make_unique<Loader>(samples, loader_config, start.loader_state)
                                                 : std::make_unique<Loader>(samples, loader_config);
  auto backend = make_backend(options.device, options.threads);
  auto trainer = backend->compile_training(
      build_graph(options.model),
      ExecConfig{options.batch / ranks, options.image_size, options.image_size, true, options.precision,
                 options.conv_algorithm},
      TrainingConfig{options.loss, options.weight_decay, options.rmsprop}, group);
  trainer->load(start.params, start.optimizer_state);
  start = StartState{};

  // Valid: from here on the run directory is written.
  MetricsLog metrics(files.metrics);
  if (lead) {
    if (resuming) {
      metrics.resume_at(step);
      message("resuming " + files.checkpoint + " at step " + std::to_string(step));
      if (!options.init_from.empty()) message("--init-from " + options.init_from + " is ignored: the run resumes");
    } else {
      if (options.resume) message("no checkpoint in " + options.out_dir + ": starting a new run");
      if (!options.init_from.empty()) message("starting from the weights in " + options.init_from);
      for (const std::string& old : {files.model, files.checkpoint}) fs::remove(old);  // --overwrite: not mixed in
      metrics.start_new();
    }
    nlohmann::json config = to_json(options);
    config["resumed_from_step"] = step;
    config["ranks"] = ranks;
    write_file_atomic(files.config, config.dump(2) + "\n");
  }
  message("training on " + std::to_string(samples.size()) + " image(s), " + std::to_string(options.steps - step) +
          " step(s) to go" + (ranks > 1 ? " on " + std::to_string(ranks) + " processes" : ""));

  // Only rank 0 knows whether it resumed; a step above 0 says so too.
  const bool had_checkpoint = resuming || step > 0;
  int64_t last_checkpoint = step;
  auto current_parameters = [&] { return Parameters{options.model, trainer->parameters()}; };
  // Rank 0 writes; every rank waits for it, so that none exits (which makes
  // mpirun end the others) while the files are being written.
  auto checkpoint = [&] {
    if (group) check_same_weights(*group, trainer->parameters(), step);
    if (lead) {
      save_checkpoint(files, current_parameters(), trainer->optimizer_state(), step, loader->state(), options, ranks);
      metrics.sync();
    }
    if (group) group->barrier();
    last_checkpoint = step;
  };

  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0;
  while (step < options.steps) {
    Batch batch = loader->next();
    const float lr = options.lr.at(step);
    StepResult r;
    try {
      r = trainer->step(batch.images.data(), batch.masks.data(), lr);
    } catch (const Error& e) {
      const std::string kept =
          had_checkpoint || last_checkpoint > 0
              ? "the last good checkpoint (step " + std::to_string(last_checkpoint) + ") is kept in " + options.out_dir
              : "no checkpoint had been written yet (--checkpoint-every " + std::to_string(options.checkpoint_every) +
                    "); metrics.jsonl in " + options.out_dir + " has the log";
      throw Error("step " + std::to_string(step + 1) + ": " + e.what() + "; training stopped, " + kept);
    }
    ++step;
    window_images += int64_t(batch.count) * ranks;
    if (lead && hooks.on_progress) hooks.on_progress(step, options.steps);

    if (lead && (step % options.display_every == 0 || step == options.steps)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      StepLog log{step, r, lr, seconds > 0 ? window_images / seconds : 0};
      metrics.add({{"step", step},
                   {"loss", r.loss},
                   {"reconstruction", r.reconstruction},
                   {"l2", r.l2},
                   {"loss_branch", to_string(r.branch)},
                   {"lr", lr},
                   {"images_per_s", log.images_per_second}});
      if (hooks.on_log) hooks.on_log(log);
      window_start = std::chrono::steady_clock::now();
      window_images = 0;
    }
    if (lead && options.eval_every > 0 && step % options.eval_every == 0 && hooks.evaluate)
      metrics.add({{"step", step}, {"eval", hooks.evaluate(current_parameters(), step)}});
    if (step % options.checkpoint_every == 0) checkpoint();
    int signal = stop ? stop->load() : 0;
    if (group) signal = agree_on_stop(*group, signal);
    if (signal != 0) {
      if (last_checkpoint != step) checkpoint();
      return {step, true, signal};
    }
  }
  if (last_checkpoint != step) checkpoint();
  return {step, false, 0};
}

void write_imported_checkpoint(const std::string& run_dir, const Parameters& params,
                               const std::vector<NamedTensor>& slots, int64_t step, const RmsPropConfig& rmsprop,
                               const std::string& source) {
  if (step < 0) throw_file_error(source, "negative step " + std::to_string(step));
  const RunFiles files(run_dir);
  std::error_code ec;
  if (fs::exists(files.checkpoint, ec))
    throw_file_error(files.checkpoint, "already exists; import into a new run directory");
  RmsProp optimizer(rmsprop);
  optimizer.load_state(params.tensors, slots, source);
  const RunDirectory run_directory(run_dir);
  write_checkpoint_files(files, params, optimizer.state(params.tensors), step, {{"source", source}});
}

std::vector<Sample> open_split(const std::string& data_dir, int class_id, Split split) {
  std::error_code ec;
  if (fs::is_directory(fs::path(data_dir) / "images", ec)) return load_folder_dataset(data_dir);
  std::string lower = to_string(split);
  for (char& c : lower) c = static_cast<char>(std::tolower(c));
  const fs::path split_dir = fs::path(data_dir) / lower;
  if (fs::is_directory(split_dir / "images", ec)) return load_folder_dataset(split_dir.string());
  return load_dagm_split(data_dir, class_id, split);
}

}  // namespace unetind
