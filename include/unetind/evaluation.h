// Runs a model over a data set split and measures it (metrics.h), and builds
// the HTML report's inputs: what `evaluate`, `train --eval-every` and `demo`
// share.
#pragma once
#include <functional>

#include "unetind/dataset.h"
#include "unetind/metrics.h"
#include "unetind/predictor.h"
#include "unetind/report.h"

namespace unetind {

struct EvaluationOptions {
  int batch = 8;
  int loader_threads = 2;
  std::function<void(size_t done, size_t total)> on_progress;
};

// Every sample once, in order, at the predictor's image size. Pixel metrics
// need masks: when a defective sample has no label file (the public MPI set)
// only the image-level metrics are computed.
EvalReport evaluate_samples(Predictor& predictor, const std::vector<Sample>& samples,
                            const EvaluationOptions& options);

// The report for `eval`: the gallery (the highest-scoring true and false
// positives and the lowest-scoring misses, `per_category` each) is predicted
// again to draw overlays, shrunk to at most 256 px a side to keep the file small.
ReportInputs build_report(Predictor& predictor, const std::vector<Sample>& samples, const EvalReport& eval,
                          const std::string& title, int per_category = 4, float threshold = 0.5f);

}  // namespace unetind
