/* The C API of unet-industrial: a model file in, answers for images in the
 * caller's memory out, for programs in C, C#, Python (ctypes) or anything
 * else that can call C. libunetind_c.so (build/lib) implements it.
 *
 * Conventions:
 *  - Handles are opaque; each _load/_read has a _free.
 *  - Every function that can fail returns an unetind_status. After a
 *    failure, unetind_last_error() gives the message (naming the file or
 *    the argument) until the calling thread's next call.
 *  - No C++ exception ever crosses this boundary.
 *  - Output buffers are the caller's; NULL skips an output.
 *  - A model handle may be used from several threads; its forward passes
 *    run one at a time.
 */
#ifndef UNETIND_C_API_H
#define UNETIND_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum unetind_status {
  UNETIND_OK = 0,
  UNETIND_ERROR_ARGUMENT = 1,      /* a null pointer, a bad size, option or threshold */
  UNETIND_ERROR_FILE = 2,          /* a file missing, unreadable or malformed */
  UNETIND_ERROR_OUT_OF_MEMORY = 3,
  UNETIND_ERROR_INTERNAL = 4       /* a bug: please report the message */
} unetind_status;

/* The message of the calling thread's last failure ("" if there was none).
 * Valid until that thread's next call into the API. */
const char* unetind_last_error(void);

/* The library's version, e.g. "0.1.0". */
const char* unetind_version(void);

/* ------------------------------------------------------------ models */

typedef struct unetind_model unetind_model;

typedef struct unetind_model_options {
  const char* device;    /* "cpu" (NULL: "cpu") */
  const char* precision; /* "fp32" or "bf16" (NULL: "fp32") */
  int image_size;        /* the model's input size, a multiple of 16 (0: 512) */
  int threads;           /* CPU threads (0: every core) */
} unetind_model_options;

/* Loads a weights file (.safetensors). options may be NULL (the defaults).
 * The threshold in use is the one the file carries (evaluate
 * --set-threshold), else 0.5. */
unetind_status unetind_model_load(const char* path, const unetind_model_options* options, unetind_model** model);
void unetind_model_free(unetind_model* model); /* NULL is fine */

int unetind_model_image_size(const unetind_model* model);
/* The threshold in use and where it came from ("the model file: ...",
 * "the default ...", or "unetind_model_set_threshold"). The text is valid
 * until the model is freed or its threshold set. */
float unetind_model_threshold(const unetind_model* model);
const char* unetind_model_threshold_source(const unetind_model* model);
unetind_status unetind_model_set_threshold(unetind_model* model, float threshold); /* 0..1 */

typedef enum unetind_pixel_type {
  UNETIND_PIXELS_U8 = 0,        /* uint8_t gray levels 0..255 */
  UNETIND_PIXELS_F32 = 1,       /* float gray levels 0..255 */
  UNETIND_PIXELS_F32_SCALED = 2 /* float already scaled to [-1, 1] (x / 127.5 - 1), as the TF-Hub module takes */
} unetind_pixel_type;

typedef struct unetind_result {
  float threshold;       /* the one the decision used */
  float defect_score;    /* the largest probability inside the image */
  int64_t defect_pixels; /* the image's pixels above the threshold */
  int is_defective;      /* defect_score > threshold */
} unetind_result;

/* Runs the model on one image of any size: `height` rows of `width` pixels,
 * `row_stride` bytes apart (0: packed). It is centre-cropped or padded to
 * the model's size as the reference does, and the answer is drawn back in
 * the image's own geometry:
 *   probabilities  width x height floats (NULL: not wanted), 0 where a crop
 *                  cut the image away;
 *   mask           width x height bytes, 255 above the threshold, else 0;
 *   result         the score and the decision (NULL: not wanted).
 * `type` is a unetind_pixel_type, taken as an int so that any value a C
 * caller passes is refused cleanly rather than read as an invalid enum. */
unetind_status unetind_model_inspect(unetind_model* model, const void* pixels, int type, int width,
                                     int height, size_t row_stride, float* probabilities, uint8_t* mask,
                                     unetind_result* result);

/* ------------------------------------------------------------ images */

/* An image file read as the library reads it (PNG, JPEG, TIFF 8/16-bit,
 * BMP, PGM/PPM/PBM, by content), gray float 0..255: for callers without a
 * decoder of their own. */
typedef struct unetind_image unetind_image;

unetind_status unetind_image_read(const char* path, unetind_image** image);
void unetind_image_free(unetind_image* image); /* NULL is fine */
int unetind_image_width(const unetind_image* image);
int unetind_image_height(const unetind_image* image);
const float* unetind_image_pixels(const unetind_image* image); /* width x height, row-major */

#ifdef __cplusplus
}
#endif

#endif /* UNETIND_C_API_H */
