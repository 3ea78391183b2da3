/* A line's inspection program in C, through the C API (include/unetind/c_api.h):
 * load a model, read an image, run the model on its pixels, and write the
 * probabilities, one float32 per pixel (row-major, little-endian), to a file.
 *
 *   cc -std=c11 -Iinclude examples/inspect_image.c -Lbuild/lib -lunetind_c -Wl,-rpath,build/lib -o inspect_image
 *   ./inspect_image w.safetensors image.png probabilities.f32
 *
 * A real program would pass its camera's buffer to unetind_model_inspect
 * directly (UNETIND_PIXELS_U8 with the buffer's row stride). */
#include <stdio.h>
#include <stdlib.h>

#include "unetind/c_api.h"

static int fail(const char* what) {
  fprintf(stderr, "error: %s: %s\n", what, unetind_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.safetensors IMAGE OUT.f32\n", argv[0]);
    return 2;
  }
  unetind_model* model = NULL;
  if (unetind_model_load(argv[1], NULL, &model) != UNETIND_OK) return fail("loading the model");

  unetind_image* image = NULL;
  if (unetind_image_read(argv[2], &image) != UNETIND_OK) {
    unetind_model_free(model);
    return fail("reading the image");
  }
  const int width = unetind_image_width(image), height = unetind_image_height(image);
  float* probabilities = malloc(sizeof(float) * (size_t)width * (size_t)height);
  unsigned char* mask = malloc((size_t)width * (size_t)height);
  unetind_result result;
  int status = 1;
  if (!probabilities || !mask) {
    fprintf(stderr, "error: out of memory\n");
  } else if (unetind_model_inspect(model, unetind_image_pixels(image), UNETIND_PIXELS_F32, width, height, 0,
                                   probabilities, mask, &result) != UNETIND_OK) {
    status = fail("running the model");
  } else {
    printf("%s: %dx%d, defect score %.6f, %lld defect pixels, %s at threshold %g (from %s)\n", argv[2], width,
           height, result.defect_score, (long long)result.defect_pixels, result.is_defective ? "DEFECT" : "ok",
           result.threshold, unetind_model_threshold_source(model));
    const size_t count = (size_t)width * (size_t)height;
    FILE* out = fopen(argv[3], "wb");
    const int written = out && fwrite(probabilities, sizeof(float), count, out) == count;
    if (out && fclose(out) == 0 && written) {
      status = 0;
    } else {
      fprintf(stderr, "error: cannot write %s\n", argv[3]);
    }
  }
  free(mask);
  free(probabilities);
  unetind_image_free(image);
  unetind_model_free(model);
  return status;
}
