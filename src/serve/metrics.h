// GET /metrics (Prometheus text format, Triton's metric names and labels) and
// GET /v2/models/stats (Triton's statistics extension), from the models'
// counters.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/served_model.h"

namespace unetind::serve {

std::string prometheus_metrics(const std::vector<ServedModel*>& models);
nlohmann::json model_statistics(const std::vector<ServedModel*>& models);

}  // namespace unetind::serve
