// include/unetind/c_api.h over the C++ library. Every entry point runs its
// body through `guarded`, which turns each exception into a status and the
// thread's last error: nothing is thrown across the C boundary.
#include "unetind/c_api.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "unetind/error.h"
#include "unetind/image_io.h"
#include "unetind/inspector.h"
#include "unetind/predictor.h"

struct unetind_model {
  std::unique_ptr<unetind::Inspector> inspector;
  std::string threshold_source;  // what unetind_model_threshold_source hands out
};

struct unetind_image {
  unetind::GrayImage image;
};

namespace {

thread_local std::string last_error;

// A caller's mistake that is not about a file.
struct ArgumentError : unetind::Error {
  using unetind::Error::Error;
};

// `file_errors`: whether the library's Error means a file (for the functions
// that take a path) or an argument (for the others).
template <typename F>
unetind_status guarded(bool file_errors, F&& body) {
  try {
    body();
    last_error.clear();
    return UNETIND_OK;
  } catch (const ArgumentError& e) {
    last_error = e.what();
    return UNETIND_ERROR_ARGUMENT;
  } catch (const unetind::Error& e) {
    last_error = e.what();
    return file_errors ? UNETIND_ERROR_FILE : UNETIND_ERROR_ARGUMENT;
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
    return UNETIND_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error = std::string("internal error: ") + e.what();
    return UNETIND_ERROR_INTERNAL;
  } catch (...) {
    last_error = "internal error: an unknown exception";
    return UNETIND_ERROR_INTERNAL;
  }
}

void require(const void* pointer, const char* what) {
  if (!pointer) throw ArgumentError(std::string(what) + " is NULL");
}

unetind::PixelFormat pixel_format(int type) {
  switch (type) {
    case UNETIND_PIXELS_U8: return unetind::PixelFormat::U8;
    case UNETIND_PIXELS_F32: return unetind::PixelFormat::F32;
    case UNETIND_PIXELS_F32_SCALED: return unetind::PixelFormat::F32Scaled;
  }
  throw ArgumentError("unknown pixel type " + std::to_string(type));
}

}  // namespace

extern "C" {

const char* unetind_last_error(void) { return last_error.c_str(); }

const char* unetind_version(void) { return UNETIND_VERSION; }

unetind_status unetind_model_load(const char* path, const unetind_model_options* options, unetind_model** model) {
  return guarded(true, [&] {
    require(model, "the model pointer");
    *model = nullptr;
    require(path, "the path");
    unetind::InspectorOptions o;
    if (options) {
      if (options->device) o.device = options->device;
      if (options->precision) o.precision = options->precision;
      if (options->image_size) o.image_size = options->image_size;
      o.threads = options->threads;
    }
    // The options first: a bad one is the caller's mistake, not the file's.
    try {
      unetind::parse_precision(o.precision);
      unetind::check_image_size(o.image_size);
      unetind::make_backend(o.device, o.threads);
    } catch (const unetind::Error& e) {
      throw ArgumentError(e.what());
    }
    auto m = std::make_unique<unetind_model>();
    m->inspector = std::make_unique<unetind::Inspector>(path, o);
    m->threshold_source = m->inspector->threshold().source;
    *model = m.release();
  });
}

void unetind_model_free(unetind_model* model) { delete model; }

int unetind_model_image_size(const unetind_model* model) { return model ? model->inspector->image_size() : 0; }

float unetind_model_threshold(const unetind_model* model) {
  return model ? model->inspector->threshold().value : 0.0f;
}

const char* unetind_model_threshold_source(const unetind_model* model) {
  return model ? model->threshold_source.c_str() : "";
}

unetind_status unetind_model_set_threshold(unetind_model* model, float threshold) {
  return guarded(false, [&] {
    require(model, "the model");
    model->inspector->set_threshold(threshold, "unetind_model_set_threshold");
    model->threshold_source = "unetind_model_set_threshold";
  });
}

unetind_status unetind_model_inspect(unetind_model* model, const void* pixels, int type, int width,
                                     int height, size_t row_stride, float* probabilities, uint8_t* mask,
                                     unetind_result* result) {
  return guarded(false, [&] {
    require(model, "the model");
    const unetind::Inspection r =
        model->inspector->inspect(unetind::PixelView{pixels, pixel_format(type), width, height, row_stride});
    if (probabilities) std::copy(r.probabilities.begin(), r.probabilities.end(), probabilities);
    if (mask) {
      const std::vector<uint8_t> m = unetind::defect_mask(r);
      std::copy(m.begin(), m.end(), mask);
    }
    if (result) *result = unetind_result{r.threshold, r.defect_score, r.defect_pixels, r.is_defective ? 1 : 0};
  });
}

unetind_status unetind_image_read(const char* path, unetind_image** image) {
  return guarded(true, [&] {
    require(image, "the image pointer");
    *image = nullptr;
    require(path, "the path");
    *image = new unetind_image{unetind::read_image_gray(path)};
  });
}

void unetind_image_free(unetind_image* image) { delete image; }

int unetind_image_width(const unetind_image* image) { return image ? image->image.width : 0; }
int unetind_image_height(const unetind_image* image) { return image ? image->image.height : 0; }
const float* unetind_image_pixels(const unetind_image* image) { return image ? image->image.pixels.data() : nullptr; }

}  // extern "C"
