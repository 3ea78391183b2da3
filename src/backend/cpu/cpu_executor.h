#pragma once
#include <memory>

#include "unetind/backend.h"

namespace unetind::cpu {

std::unique_ptr<Executor> compile_cpu(const Graph& graph, const ExecConfig& config);

}  // namespace unetind::cpu
