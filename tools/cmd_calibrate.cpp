// `unet-industrial calibrate`: measures a model's activation ranges on real
// images of a data set split and writes the model with them, ready for
// `--precision int8` (calibration.h).
#include <cstdio>

#include "commands.h"
#include "progress.h"
#include "unetind/calibration.h"
#include "unetind/error.h"
#include "unetind/trainer.h"

namespace unetind::cli {

void register_calibrate(CLI::App& app) {
  struct Options {
    std::string model, data, out, split = "Train";
    int class_id = 1, images = 64, image_size = kModelImageSize, threads = 0;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("calibrate", "Measure activation ranges on real images for --precision int8");
  cmd->add_option("--model", opt->model, "Weights file (.safetensors)")->required();
  cmd->add_option("--data", opt->data, "DAGM 2007 root (holding ClassN/) or a folder data set")->required();
  cmd->add_option("--class", opt->class_id, "DAGM class (1-10)")->capture_default_str();
  cmd->add_option("--split", opt->split, "Train or Test")->check(CLI::IsMember({"Train", "Test"}))->capture_default_str();
  cmd->add_option("--images", opt->images, "At most this many images, evenly spread over the split")
      ->capture_default_str();
  cmd->add_option("--image-size", opt->image_size, "Crop/pad images to this size (multiple of 16), as for inference")
      ->capture_default_str();
  cmd->add_option("--threads", opt->threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_option("--out", opt->out, "The calibrated weights file to write (may be --model itself)")->required();
  cmd->callback([opt] {
    if (opt->images < 1) throw Error("--images must be at least 1");
    check_image_size(opt->image_size);
    const Parameters params = load_parameters(opt->model);
    const Split split = opt->split == "Train" ? Split::Train : Split::Test;
    const std::vector<Sample> samples = open_split(opt->data, opt->class_id, split);
    if (samples.empty()) throw Error(opt->data + ": class " + std::to_string(opt->class_id) + " " + opt->split +
                                     " has no images to calibrate on");
    set_cpu_threads(opt->threads);
    // Evenly spread, so that defective and defect-free images both count.
    const size_t count = std::min(samples.size(), static_cast<size_t>(opt->images));
    const size_t pixels = static_cast<size_t>(opt->image_size) * opt->image_size;
    std::vector<float> images(count * pixels);
    for (size_t i = 0; i < count; ++i) {
      const PreparedImage p = load_prepared_image(samples[i * samples.size() / count].image_path, opt->image_size);
      std::copy(p.input.begin(), p.input.end(), images.begin() + i * pixels);
    }
    const std::string source = "class " + std::to_string(opt->class_id) + " " + opt->split + " of " + opt->data;
    const Int8Calibration c = calibrate_int8(params, images, static_cast<int>(count), opt->image_size, source);
    write_calibrated_model(opt->model, opt->out, c);
    std::printf("calibrated %s on %zu image(s) of %s: the range of each channel of %zu activations, written to %s\n",
                opt->model.c_str(), count, source.c_str(), c.ranges.size(), opt->out.c_str());
  });
}

}  // namespace unetind::cli
