// The Python module `unetind` over the C++ library (pybind11, NumPy in and
// out). A model is used as the TF-Hub module is, in one call:
//
//   import unetind
//   m = unetind.Model("w.safetensors", device="cpu", precision="fp32")
//   probs = m(images)            # N x H x W x 1 float32 in [-1, 1] -> N x S x S x 1
//   r = m.predict(uint8_images)  # N x H x W (x 1) -> probabilities, masks, scores, decisions
//
// and train() and evaluate() run the library's jobs with progress through a
// callback. Library errors are raised as unetind.Error with the library's
// message; the GIL is released while the model runs.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>

#include "unetind/error.h"
#include "unetind/evaluation.h"
#include "unetind/image_io.h"
#include "unetind/inspector.h"
#include "unetind/operating_threshold.h"
#include "unetind/trainer.h"

namespace py = pybind11;
using namespace unetind;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// nlohmann::json to Python objects, through the json module: the library's
// reports are JSON already.
py::object to_python(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(j.dump()); }

// A stack of gray images: N x H x W, or N x H x W x 1 (the TF-Hub layout).
struct ImageStack {
  py::ssize_t count = 0, height = 0, width = 0;
};

ImageStack image_stack(const py::buffer_info& info, const char* what) {
  const bool channel = info.ndim == 4 && info.shape[3] == 1;
  if (!(info.ndim == 3 || channel))
    throw py::value_error(std::string(what) + " must be N x H x W x 1 or N x H x W, not of " +
                          std::to_string(info.ndim) + " dimensions");
  ImageStack s{info.shape[0], info.shape[1], info.shape[2]};
  if (s.count < 1 || s.height < 1 || s.width < 1) throw py::value_error(std::string(what) + " holds no image");
  return s;
}

class Model {
 public:
  Model(const std::string& path, const std::string& device, const std::string& precision, int image_size, int threads,
        const std::string& conv, int batch, std::optional<float> threshold) {
    InspectorOptions o;
    o.device = device;
    o.precision = precision;
    o.image_size = image_size;
    o.threads = threads;
    o.conv = conv;
    o.batch = batch;
    o.threshold = threshold;
    o.threshold_given_by = "Model(threshold=...)";
    inspector_ = std::make_unique<Inspector>(path, o);
  }

  int image_size() const { return inspector_->image_size(); }
  float threshold() const { return inspector_->threshold().value; }
  std::string threshold_source() const { return inspector_->threshold().source; }
  void set_threshold(float t) { inspector_->set_threshold(t, "Model.threshold"); }

  // The TF-Hub module's call: N x H x W x 1 in [-1, 1] to N x S x S x 1
  // probabilities. Images of the model's size in a C-contiguous float32
  // array are read in place; others are cropped or padded as the reference.
  py::array_t<float> call(const FloatArray& images) {
    const ImageStack s = image_stack(images.request(), "images");
    const py::ssize_t size = image_size();
    py::array_t<float> probs({s.count, size, size, py::ssize_t{1}});
    float* out = probs.mutable_data();
    if (s.height == size && s.width == size) {
      const float* in = images.data();
      for (py::ssize_t i = 0; i < images.size(); ++i)
        if (!std::isfinite(in[i])) throw py::value_error("images hold a value that is not finite");
      py::gil_scoped_release release;
      inspector_->run(in, s.count, out);
    } else {
      std::vector<float> inputs = prepare(images.data(), PixelFormat::F32Scaled, s);
      py::gil_scoped_release release;
      inspector_->run(inputs.data(), s.count, out);
    }
    return probs;
  }

  // uint8 images (N x H x W, or x 1) to their answers, each in the image's
  // own geometry: probabilities N x H x W, masks N x H x W (255 above the
  // threshold), scores, defect pixel counts and decisions N.
  py::dict predict(const ByteArray& images, std::optional<float> threshold) {
    const ImageStack s = image_stack(images.request(), "images");
    const float t = threshold ? *threshold : this->threshold();
    check_threshold(t, "threshold");
    const int size = image_size();
    const size_t model_pixels = static_cast<size_t>(size) * size, image_pixels = s.height * s.width;
    std::vector<float> inputs = prepare(images.data(), PixelFormat::U8, s), model_probs(inputs.size());
    py::array_t<float> probs({s.count, s.height, s.width});
    py::array_t<uint8_t> masks({s.count, s.height, s.width});
    py::array_t<float> scores(s.count);
    py::array_t<int64_t> pixels(s.count);
    py::array_t<bool> decisions(s.count);
    {
      py::gil_scoped_release release;
      inspector_->run(inputs.data(), s.count, model_probs.data());
      for (py::ssize_t i = 0; i < s.count; ++i) {
        const Inspection r = inspect(model_probs.data() + i * model_pixels, size, static_cast<int>(s.width),
                                     static_cast<int>(s.height), t);
        std::copy(r.probabilities.begin(), r.probabilities.end(), probs.mutable_data() + i * image_pixels);
        const std::vector<uint8_t> mask = defect_mask(r);
        std::copy(mask.begin(), mask.end(), masks.mutable_data() + i * image_pixels);
        scores.mutable_data()[i] = r.defect_score;
        pixels.mutable_data()[i] = r.defect_pixels;
        decisions.mutable_data()[i] = r.is_defective;
      }
    }
    py::dict out;
    out["probabilities"] = probs;
    out["masks"] = masks;
    out["scores"] = scores;
    out["defect_pixels"] = pixels;
    out["decisions"] = decisions;
    out["threshold"] = t;
    return out;
  }

 private:
  // Every image of the stack prepared to the model's size, one after another.
  std::vector<float> prepare(const void* data, PixelFormat format, const ImageStack& s) const {
    const int size = image_size();
    const size_t model_pixels = static_cast<size_t>(size) * size;
    const size_t image_bytes = s.height * s.width * (format == PixelFormat::U8 ? 1 : sizeof(float));
    std::vector<float> inputs(s.count * model_pixels);
    for (py::ssize_t i = 0; i < s.count; ++i) {
      const PixelView view{static_cast<const char*>(data) + i * image_bytes, format, static_cast<int>(s.width),
                           static_cast<int>(s.height), 0};
      const std::vector<float> one = prepare_pixels(view, size);
      std::copy(one.begin(), one.end(), inputs.begin() + i * model_pixels);
    }
    return inputs;
  }

  std::unique_ptr<Inspector> inspector_;
};

// Thrown through a library job that Ctrl-C stopped and that has no stop
// flag of its own (evaluate).
struct Interrupted {};

// Runs Python code (a callback) from a library hook, with the GIL. A Ctrl-C
// seen there stops the job: train through its stop flag (it checkpoints
// first), others by Interrupted. The KeyboardInterrupt is raised when the
// job has returned.
class PythonHooks {
 public:
  explicit PythonHooks(std::atomic<int>* stop) : stop_(stop) {}

  template <typename F>
  void with_gil(F&& code) {
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) {
      interrupted_ = true;
      PyErr_Clear();
      if (!stop_) throw Interrupted{};
      *stop_ = SIGINT;
      return;
    }
    code();
  }
  void interrupted() { interrupted_ = true; }

  // Raises the KeyboardInterrupt that call() held back. Needs the GIL.
  void raise_if_interrupted() const {
    if (interrupted_) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
      throw py::error_already_set();
    }
  }

 private:
  std::atomic<int>* stop_;
  bool interrupted_ = false;
};

py::object train_job(const std::string& data, const std::string& out, int class_id, int steps, int batch, float lr,
                 int image_size, uint64_t seed, const std::string& loss, bool augment, bool all_images,
                 const std::string& init_from, const std::string& device, int threads, const std::string& precision,
                 const std::string& conv, int checkpoint_every, bool resume, const py::object& progress,
                 const py::object& log) {
  TrainOptions o;
  o.data_dir = data;
  o.out_dir = out;
  o.class_id = class_id;
  o.steps = steps;
  o.batch = batch;
  o.lr.base = lr;
  o.image_size = image_size;
  o.seed = seed;
  o.loss = parse_loss_kind(loss);
  o.augment = augment;
  o.all_images = all_images;
  o.init_from = init_from;
  o.device = device;
  o.threads = threads;
  o.precision = parse_precision(precision);
  o.conv_algorithm = parse_conv_algorithm(conv);
  o.checkpoint_every = checkpoint_every;
  o.resume = resume;
  std::atomic<int> stop{0};
  PythonHooks python(&stop);
  TrainHooks hooks;
  hooks.on_progress = [&](int64_t step, int64_t total) {
    python.with_gil([&] {
      if (!progress.is_none()) progress(step, total);
    });
  };
  hooks.on_log = [&](const StepLog& s) {
    python.with_gil([&] {
      if (log.is_none()) return;
      log(py::dict(py::arg("step") = s.step, py::arg("loss") = s.result.loss,
                   py::arg("reconstruction") = s.result.reconstruction, py::arg("l2") = s.result.l2,
                   py::arg("lr") = s.lr, py::arg("images_per_second") = s.images_per_second));
    });
  };
  TrainResult result;
  {
    py::gil_scoped_release release;
    result = unetind::train(o, hooks, &stop);
  }
  python.raise_if_interrupted();
  py::dict d;
  d["steps"] = result.step;
  d["interrupted"] = result.interrupted;
  d["model"] = out + "/model.safetensors";
  return d;
}

py::object evaluate_job(const std::string& data, const std::string& model, int class_id, const std::string& split,
                    int batch, int image_size, const std::string& device, int threads, const std::string& precision,
                    const std::string& conv, const std::optional<std::string>& set_threshold,
                    const py::object& progress) {
  if (split != "Train" && split != "Test") throw py::value_error("split must be 'Train' or 'Test', not '" + split + "'");
  if (set_threshold) check_threshold_rule(*set_threshold);
  PythonHooks python(nullptr);
  EvalReport report;
  std::optional<OperatingThreshold> stored;
  try {
    py::gil_scoped_release release;
    const std::vector<Sample> samples = open_split(data, class_id, split == "Train" ? Split::Train : Split::Test);
    Predictor predictor(load_parameters(model), make_backend(device, threads), image_size, parse_precision(precision),
                        parse_conv_algorithm(conv));
    EvaluationOptions eo;
    eo.batch = batch;
    eo.on_progress = [&](size_t done, size_t total) {
      python.with_gil([&] {
        if (!progress.is_none()) progress(done, total);
      });
    };
    report = evaluate_samples(predictor, samples, eo);
    if (set_threshold)
      stored = set_operating_threshold(model, report, *set_threshold, data, class_id, split, predictor.parameters());
  } catch (const Interrupted&) {
    python.interrupted();
  }
  python.raise_if_interrupted();
  py::object result = to_python(to_json(report));
  if (stored) {
    result["operating_threshold"] = stored->threshold;
    result["operating_threshold_evidence"] = describe(*stored);
  }
  return result;
}

py::array_t<float> read_image(const std::string& path) {
  GrayImage image;
  {
    py::gil_scoped_release release;
    image = read_image_gray(path);
  }
  py::array_t<float> out({image.height, image.width});
  std::memcpy(out.mutable_data(), image.pixels.data(), image.pixels.size() * sizeof(float));
  return out;
}

// pybind11 before 2.12 reads NumPy's dtype structure as NumPy 1 lays it
// out; under NumPy 2 its arrays get wrong strides and results are silently
// wrong. Debian 12's pybind11 is 2.10, so such a build refuses NumPy 2.
void require_numpy_this_pybind11_reads() {
#if PYBIND11_VERSION_MAJOR == 2 && PYBIND11_VERSION_MINOR < 12
  const std::string version = py::str(py::module_::import("numpy").attr("__version__"));
  if (version.rfind("1.", 0) != 0)
    throw py::import_error("unetind was built with pybind11 " PYBIND11_TOSTRING(PYBIND11_VERSION_MAJOR) "." PYBIND11_TOSTRING(
        PYBIND11_VERSION_MINOR) ", which reads NumPy 1 arrays only, and this is NumPy " +
                           version + ": install numpy<2");
#endif
}

}  // namespace

PYBIND11_MODULE(unetind, m) {
  require_numpy_this_pybind11_reads();
  m.doc() = "unet-industrial: NVIDIA's UNet-Industrial (TinyUNet) for surface-defect segmentation, in C++";
  m.attr("__version__") = UNETIND_VERSION;
  py::register_exception<Error>(m, "Error", PyExc_RuntimeError);

  py::class_<Model>(m, "Model", "A weights file ready to run: m(images) as the TF-Hub module, m.predict(pixels)")
      .def(py::init<const std::string&, const std::string&, const std::string&, int, int, const std::string&, int,
                    std::optional<float>>(),
           py::arg("path"), py::arg("device") = "cpu", py::arg("precision") = "fp32",
           py::arg("image_size") = kModelImageSize, py::arg("threads") = 0, py::arg("conv") = "auto",
           py::arg("batch") = 8, py::arg("threshold") = py::none(),
           "Loads a weights file (.safetensors). The threshold is `threshold`, else the one the file carries "
           "(evaluate --set-threshold), else 0.5.")
      .def("__call__", &Model::call, py::arg("images"),
           "N x H x W x 1 float32 in [-1, 1] (x / 127.5 - 1) -> N x S x S x 1 probabilities, as the TF-Hub module")
      .def("predict", &Model::predict, py::arg("images"), py::arg("threshold") = py::none(),
           "uint8 N x H x W (x 1) -> dict of probabilities and masks (N x H x W, each image's own geometry), "
           "scores, defect_pixels, decisions (N) and the threshold used")
      .def_property_readonly("image_size", &Model::image_size)
      .def_property("threshold", &Model::threshold, &Model::set_threshold)
      .def_property_readonly("threshold_source", &Model::threshold_source);

  m.def("train", &train_job, py::arg("data"), py::arg("out"), py::arg("class_id") = 1, py::arg("steps") = 2500,
        py::arg("batch") = 16, py::arg("lr") = 1e-4f, py::arg("image_size") = kModelImageSize, py::arg("seed") = 0,
        py::arg("loss") = "adaptive_loss", py::arg("augment") = true, py::arg("all_images") = false,
        py::arg("init_from") = "", py::arg("device") = "cpu", py::arg("threads") = 0, py::arg("precision") = "fp32",
        py::arg("conv") = "auto", py::arg("checkpoint_every") = 1000, py::arg("resume") = false,
        py::arg("progress") = py::none(), py::arg("log") = py::none(),
        "Trains with NVIDIA's recipe into `out` (model.safetensors, checkpoint.safetensors, metrics.jsonl). "
        "progress(step, total) after every step, log(dict) at every display; Ctrl-C checkpoints, then raises "
        "KeyboardInterrupt.");
  m.def("evaluate", &evaluate_job, py::arg("data"), py::arg("model"), py::arg("class_id") = 1, py::arg("split") = "Test",
        py::arg("batch") = 8, py::arg("image_size") = kModelImageSize, py::arg("device") = "cpu",
        py::arg("threads") = 0, py::arg("precision") = "fp32", py::arg("conv") = "auto",
        py::arg("set_threshold") = py::none(), py::arg("progress") = py::none(),
        "NVIDIA's metrics and more on a split, as a dict (what evaluate --json writes). set_threshold "
        "('best-f1', 'dagm-cost' or a number) stores that operating threshold in the model file.");
  m.def("read_image", &read_image, py::arg("path"),
        "An image file (PNG, JPEG, TIFF, BMP, PGM/PPM/PBM) as the library reads it: H x W float32 gray, 0..255");
}
