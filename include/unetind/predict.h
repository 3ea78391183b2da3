// `predict`'s pipeline as a library function: collect the input images,
// run them in batches, write per image `<stem>_prob.npy` (the size x size
// model output, what the TF-Hub module returns), `<stem>_mask.png` and
// `<stem>_overlay.png` (both in the image's own geometry), and one
// `predictions.csv` for all. The CLI's predict and demo call it; serve and
// embedding programs use the same Predictor and inspect() underneath.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "unetind/inspection.h"
#include "unetind/predictor.h"

namespace unetind {

struct PredictFilesOptions {
  std::string out_dir;
  float threshold = 0.5f;
  int batch = 8;
};

struct PredictedFile {
  std::string file;
  float defect_score = 0;
  int64_t defect_pixels = 0;
  bool is_defective = false;
};

struct FileFailure {
  std::string file;
  std::string message;  // names the file
};

struct PredictFilesResult {
  std::vector<PredictedFile> predicted;  // in input order
  std::vector<FileFailure> failed;       // skipped: unreadable, or their outputs could not be written
};

struct PredictHooks {
  std::function<void(size_t done, size_t total)> on_progress;  // after each batch
  std::function<void(const FileFailure&)> on_failure;          // as each bad file is met
};

// Files as given; a directory contributes its images (not recursive, by
// has_image_extension), sorted. Throws Error for a directory without images or two inputs whose outputs
// would collide (the same name stem).
std::vector<std::string> collect_image_files(const std::vector<std::string>& inputs);

// A bad image is skipped and reported; the others are still predicted.
// predictions.csv (RFC 4180) is written last, atomically, like every output.
PredictFilesResult predict_files(Predictor& predictor, const std::vector<std::string>& files,
                                 const PredictFilesOptions& options, const PredictHooks& hooks = {});

}  // namespace unetind
