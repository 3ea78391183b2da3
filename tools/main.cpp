#include <cstdio>
#include <string>

#include "commands.h"
#include "unetind/backend.h"
#include "unetind/data_parallel.h"
#include "unetind/error.h"
#include "unetind/png.h"

namespace unetind::cli {
int& exit_code() {
  static int code = 0;
  return code;
}

void add_conv_option(CLI::App* cmd, std::string& conv) {
  cmd->add_option("--conv", conv,
                  "Convolution algorithm: auto (Winograd for the 3x3 convolutions of fp32 on the CPU: faster, within "
                  "1e-5 of direct) or direct")
      ->check(CLI::IsMember({"auto", "direct"}))
      ->capture_default_str();
}

void add_precision_option(CLI::App* cmd, std::string& precision) {
  cmd->add_option("--precision", precision,
                  "fp32, bf16, tf32 (CUDA) or int8 (CPU; the model must carry a calibration: see `calibrate`)")
      ->capture_default_str();
}

Precision inference_precision(const std::string& precision, const std::string& device) {
  const Precision p = parse_precision(precision);
  const std::string note = precision_note(device, p);
  if (!note.empty()) std::fprintf(stderr, "note: %s\n", note.c_str());
  return p;
}

CLI::Validator at_least(long long least) {
  return CLI::Validator(
      [least](std::string& value) -> std::string {
        long long v = 0;
        if (!CLI::detail::lexical_cast(value, v)) return "'" + value + "' is not a whole number";
        return v >= least ? "" : "must be at least " + std::to_string(least) + ", not " + value;
      },
      ">=" + std::to_string(least));
}

void add_threads_option(CLI::App* cmd, int& threads) {
  cmd->add_option("--threads", threads, "CPU compute threads (0: one per core)")
      ->check(CLI::Range(0, available_cpus()))
      ->capture_default_str();
}

void add_image_limit_option(CLI::App* cmd) {
  cmd->add_option_function<int64_t>(
         "--max-image-pixels", [](const int64_t& pixels) { set_max_image_pixels(pixels); },
         "Refuse images with more pixels than this, from their header (default " + std::to_string(kMaxImagePixels) +
             ", 8192 x 8192)")
      ->check(at_least(1))
      ->envname("UNETIND_MAX_IMAGE_PIXELS");
}
}  // namespace unetind::cli

namespace {
std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// What was built in, and what this machine offers now.
std::string version_text() {
  return std::string("unet-industrial ") + UNETIND_VERSION + "\n" +
         "backends compiled in: " + joined(unetind::compiled_backends()) + "\n" +
         "data parallel: " + unetind::mpi_library_version() + "\n" +
         "devices visible now: " + joined(unetind::available_backends());
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"unet-industrial: industrial surface-defect segmentation (NVIDIA UNet-Industrial / TinyUNet)"};
  app.set_version_flag("--version", version_text);
  app.require_subcommand(1);
  unetind::cli::register_init(app);
  unetind::cli::register_predict(app);
  unetind::cli::register_train(app);
  unetind::cli::register_evaluate(app);
  unetind::cli::register_benchmark(app);
  unetind::cli::register_demo(app);
  unetind::cli::register_synth(app);
  unetind::cli::register_import(app);
  unetind::cli::register_inspect(app);
  unetind::cli::register_export(app);
  unetind::cli::register_serve(app);
  unetind::cli::register_calibrate(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const unetind::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return unetind::cli::exit_code();
}
